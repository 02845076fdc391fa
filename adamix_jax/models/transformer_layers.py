"""Layers shared by the transformer-era backbones (DeiT, Swin, ConvNeXt): attention, MLP, drop path, norms.

Initialisation follows the official backbones (timm / OpenMixup): linear layers truncated-normal with
standard deviation 0.02 and zero bias, LayerNorm scale 1 and bias 0, convolutions LeCun truncated normal
(fan in). GELU is the exact (erf) one, as PyTorch's `nn.GELU()`. Parameters are float32; the compute
dtype is `dtype`, and softmax and LayerNorm statistics run in float32.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

LINEAR_INIT = nn.initializers.truncated_normal(0.02)
CONV_INIT = nn.initializers.lecun_normal()  # Truncated normal, fan in.


def dense(features: int, *, dtype, use_bias: bool = True, name: str | None = None) -> nn.Dense:
  """A linear layer with the official initialisation."""
  return nn.Dense(features, use_bias=use_bias, kernel_init=LINEAR_INIT, dtype=dtype, name=name)


def patch_embed(features: int, patch: int, *, dtype) -> nn.Conv:
  """The patchify convolution, patch × patch with stride patch: [B, H, W, C] -> [B, H/patch, W/patch, features]."""
  return nn.Conv(
    features, (patch, patch), strides=patch, padding="VALID", kernel_init=CONV_INIT, dtype=dtype, name="patch_embed"
  )


def layer_norm(epsilon: float, *, dtype, name: str | None = None) -> nn.LayerNorm:
  """LayerNorm over the last axis; its statistics are computed in float32 whatever `dtype` is."""
  return nn.LayerNorm(epsilon=epsilon, dtype=dtype, param_dtype=jnp.float32, name=name)


# erf as a rational function on [-4, 4] (the float32 approximation XLA and Eigen use; within 5e-7 of the
# exact erf, tested). jax 0.12's own erf/erfc cannot be differentiated inside shard_map ("Primitive
# polynomial requires varying manual axes to match"), and the training step runs in shard_map.
_ERF_NUMERATOR = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                  -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)  # fmt: skip
_ERF_DENOMINATOR = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                    -1.42647390514189e-02)  # fmt: skip


def erf(x: jax.Array) -> jax.Array:
  """The error function, elementwise, to float32 precision (see _ERF_NUMERATOR)."""
  x = jnp.clip(x, -4.0, 4.0)
  squared = x * x
  numerator = jnp.zeros_like(x)
  for coefficient in _ERF_NUMERATOR:
    numerator = numerator * squared + coefficient
  denominator = jnp.zeros_like(x)
  for coefficient in _ERF_DENOMINATOR:
    denominator = denominator * squared + coefficient
  return x * numerator / denominator


def gelu(x: jax.Array) -> jax.Array:
  """The exact GELU x Φ(x) (PyTorch's default), not the tanh approximation Flax uses by default."""
  return 0.5 * x * (1 + erf(x * 0.7071067811865476))


class DropPath(nn.Module):
  """Stochastic depth: in training, zeroes a sample's residual branch with probability `rate` and scales
  the kept ones by 1 / (1 - rate). Needs the "drop_path" rng when `rate` > 0 and `train`."""

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """x [B, ...] -> x with some samples' branch dropped."""
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    kept = jax.random.bernoulli(self.make_rng("drop_path"), keep, shape)
    return jnp.where(kept, x / keep, 0).astype(x.dtype)


def drop_path_rates(rate: float, depths: tuple[int, ...]) -> list[list[float]]:
  """The linear stochastic-depth rule: block i of all sum(depths) gets rate * i / (total - 1), per stage."""
  total = sum(depths)
  flat = [rate * i / max(total - 1, 1) for i in range(total)]
  starts = [sum(depths[:k]) for k in range(len(depths))]
  return [flat[start : start + depth] for start, depth in zip(starts, depths, strict=True)]


class Mlp(nn.Module):
  """Linear (dim -> hidden), GELU, linear (hidden -> dim)."""

  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., dim] -> [..., dim]."""
    y = gelu(dense(self.hidden, dtype=self.dtype, name="fc1")(x))
    return dense(x.shape[-1], dtype=self.dtype, name="fc2")(y)


class SelfAttention(nn.Module):
  """Multi-head self-attention with one fused qkv projection, as timm's `Attention`.

  `bias` [heads, N, N] is added to every sequence's scores (Swin's relative position bias); `mask`
  [G, N, N] is added to the scores of sequence b with b mod G (Swin's shifted-window mask, 0 or -100).
  `return_attention` also returns the attention probabilities [B, heads, N, N] (float32).
  """

  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, bias=None, mask=None, return_attention: bool = False):
    """x [B, N, dim] -> [B, N, dim] (and the attention [B, heads, N, N] if asked)."""
    batch, length, dim = x.shape
    head_dim = dim // self.num_heads
    qkv = dense(3 * dim, dtype=self.dtype, name="qkv")(x).reshape(batch, length, 3, self.num_heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # Each [B, heads, N, head_dim].
    scores = jnp.einsum("bhnd,bhmd->bhnm", q, k).astype(jnp.float32) * head_dim**-0.5
    if bias is not None:
      scores = scores + bias[None]
    if mask is not None:
      groups = mask.shape[0]
      scores = scores.reshape(batch // groups, groups, self.num_heads, length, length) + mask[None, :, None]
      scores = scores.reshape(batch, self.num_heads, length, length)
    attention = jax.nn.softmax(scores, axis=-1)
    y = jnp.einsum("bhnm,bhmd->bhnd", attention.astype(self.dtype), v)
    y = dense(dim, dtype=self.dtype, name="proj")(y.transpose(0, 2, 1, 3).reshape(batch, length, dim))
    return (y, attention) if return_attention else y


def check_heads(name: str, dims: tuple[int, ...], heads: tuple[int, ...]) -> None:
  """Raises a one-line error when a width does not split into its heads."""
  for dim, count in zip(dims, heads, strict=True):
    if dim % count:
      raise ValueError(
        f"{name}: width {dims[0]} gives {dim} channels for {count} attention heads, not divisible; choose "
        f"config.model.width as a multiple of {heads[0]} (the published width is the default, 0)."
      )
