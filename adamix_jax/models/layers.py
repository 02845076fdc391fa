"""Layers shared by the backbones: PyTorch-exact BatchNorm and convolutions, and the initialisers.

Every layer takes an `Init` so one switch selects the official initialisation (docs/method.md#initialisation: conv
kaiming-normal fan_out, BN gamma 1 / beta 0, the last BN of every residual block at 0, linear heads
N(0, 0.01)) or Flax's defaults.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

INITS = ("official", "flax")


@dataclasses.dataclass(frozen=True)
class Init:
  """Initialisers for one backbone, chosen by name (`config.model.init`)."""

  name: str = "official"

  @property
  def conv(self):
    if self.name == "official":
      return nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    return nn.linear.default_kernel_init

  @property
  def head(self):
    if self.name == "official":
      return nn.initializers.normal(0.01)
    return nn.linear.default_kernel_init

  @property
  def residual_bn_scale(self):
    """Scale of the last BN in a residual branch (0 with `zero_init_residual`, else 1)."""
    return nn.initializers.zeros if self.name == "official" else nn.initializers.ones


class BatchNorm(nn.Module):
  """BatchNorm with PyTorch's semantics, per device or synchronised over a mesh axis.

  Train mode normalises with the batch's biased variance and updates the running statistics with the
  *unbiased* variance, as `torch.nn.BatchNorm2d` does (Flax's own BatchNorm keeps the biased one).
  `momentum` follows Flax's convention: running = momentum * running + (1 - momentum) * batch, so
  PyTorch's momentum 0.1 is 0.9 here.

  Attributes:
    axis_name: mesh axis to average the batch statistics over (synchronised BN); None normalises each
      device's shard on its own.
  """

  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  scale_init: Any = nn.initializers.ones
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Normalises `x` [..., C] over every axis but the last."""
    channels = x.shape[-1]
    scale = self.param("scale", self.scale_init, (channels,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
    reduce_axes = tuple(range(x.ndim - 1))
    if train:
      x32 = x.astype(jnp.float32)
      count = x32.size // channels
      mean = jnp.mean(x32, reduce_axes)
      if self.axis_name is not None:
        mean = lax.pmean(mean, self.axis_name)
        count *= lax.axis_size(self.axis_name)
      var = jnp.mean(jnp.square(x32 - mean), reduce_axes)
      if self.axis_name is not None:
        var = lax.pmean(var, self.axis_name)
      if not self.is_initializing():
        unbiased = var * count / max(count - 1, 1)
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * unbiased
    else:
      mean, var = running_mean.value, running_var.value
    multiplier = scale * lax.rsqrt(var + self.epsilon)
    return (x * multiplier.astype(self.dtype) + (bias - mean * multiplier).astype(self.dtype)).astype(self.dtype)


def conv(features: int, kernel: int, stride: int = 1, *, init: Init, dtype, groups: int = 1, name=None) -> nn.Conv:
  """A bias-free convolution padded as PyTorch pads it (kernel // 2 on every side)."""
  pad = kernel // 2
  return nn.Conv(
    features,
    (kernel, kernel),
    strides=(stride, stride),
    padding=((pad, pad), (pad, pad)),
    use_bias=False,
    feature_group_count=groups,
    kernel_init=init.conv,
    dtype=dtype,
    name=name,
  )


def replay_batch_norm_update(before, after_once, current, times: int, momentum: float = 0.9):
  """Applies, `times` more times, the running-statistics update that took `before` to `after_once`.

  A train-mode pass on the same batch with the same parameters always produces the same batch statistics
  s, and running <- momentum * running + (1 - momentum) * s. Given one such update (before -> after_once),
  s = (after_once - momentum * before) / (1 - momentum), and `times` further passes take `current` to
  momentum**times * current + (1 - momentum**times) * s. This replaces repeated identical forward passes
  (the original's N clean teacher passes) by arithmetic on the statistics trees.
  """
  keep = momentum**times

  def leaf(old, once, now):
    batch = (once - momentum * old) / (1 - momentum)
    return keep * now + (1 - keep) * batch

  return jax.tree.map(leaf, before, after_once, current)
