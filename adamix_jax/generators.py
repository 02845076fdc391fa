"""Mask generators: AdAutoMix's `AdaptiveMask` and the Mix Block of AutoMix and SAMix
(docs/method.md#the-generator-adaptivemask, docs/method.md#automix, docs/method.md#samix).

Both read EMA-teacher features of the images to mix and return masks at image resolution. Layouts are
NHWC: features [N, B, h, w, C] (one map per image to mix), masks [B, H, W, N]. The 1x1 convolutions are
Dense layers over channels (kernel [C_in, C_out]; a PyTorch weight [out, in, 1, 1] maps to
`weight[:, :, 0, 0].T`). Attention and mask logits are computed in float32 whatever the compute dtype, as
the official code forces.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import BatchNorm
from adamix_jax.options import Options, non_negative, one_of, option, positive

GENERATOR_INIT = nn.initializers.normal(0.01)  # Every conv weight N(0, 0.01), bias 0 (official init).
UPSAMPLE_MODES = ("bilinear", "nearest")


@dataclasses.dataclass(frozen=True)
class GeneratorOptions(Options):
  """`config.generator`: the mask generator of AdAutoMix (AdaptiveMask) and AutoMix (MixBlock)."""

  section = "generator"
  feature_stage: int = option("feature_stage", non_negative)  # The backbone stage output it reads.
  reduction: int = option("reduction", positive)  # Attention width = channels // reduction.
  lam_concat: bool = option("lam_concat")  # Append lambda as a constant feature channel.
  upsample_mode: str = option("upsample_mode", one_of(UPSAMPLE_MODES))  # Up to the image size.
  attention_norm: bool = option("attention_norm")  # BN after the q/k convolutions (AdaptiveMask only).


def upsample(logits: jax.Array, scale: int, mode: str) -> jax.Array:
  """Upsamples [B, h, w, N] by an integer factor: PyTorch's bilinear (align_corners=False) or nearest."""
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(logits, scale, axis=1), scale, axis=2)
  if mode == "bilinear":
    batch, height, width, channels = logits.shape
    return jax.image.resize(logits, (batch, height * scale, width * scale, channels), "linear", antialias=False)
  raise ValueError(f"upsample mode {mode!r} is not known. Valid choices: {', '.join(UPSAMPLE_MODES)}.")


def _with_lambda_channel(features: jax.Array, lams: jax.Array) -> jax.Array:
  """Appends a constant channel lams[i] to features[i]: [N, B, h, w, C] -> [N, B, h, w, C + 1]."""
  channel = jnp.broadcast_to(lams.astype(features.dtype)[:, None, None, None, None], (*features.shape[:-1], 1))
  return jnp.concatenate([features, channel], axis=-1)


class _Projection(nn.Module):
  """A 1x1 convolution (Dense over channels), optionally conv -> BN -> ReLU as mmcv's ConvModule."""

  features: int
  relu: bool
  norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = nn.Dense(self.features, use_bias=not self.norm, kernel_init=GENERATOR_INIT, name="conv")(x)
    if self.norm:
      x = BatchNorm(name="bn")(x, train=train)
    return nn.relu(x) if self.relu else x


class AdaptiveMask(nn.Module):
  """AdAutoMix's generator: N-image cross attention, one mask logit map per image, softmax over the N.

  Attributes:
    in_channels: C of the feature maps (without the lambda channel).
    reduction: attention width d = in_channels // reduction.
    lam_concat: append each image's lambda as a constant channel.
    upsample_mode: "bilinear" or "nearest".
    scale_factor: image size / feature size.
    use_scale: divide the scores by sqrt(d).
    attention_norm: BN after the q/k convolutions (which then have no bias); ImageNet R50 only.
  """

  in_channels: int
  reduction: int = 2
  lam_concat: bool = False
  upsample_mode: str = "bilinear"
  scale_factor: int = 4
  use_scale: bool = True
  attention_norm: bool = False

  @nn.compact
  def __call__(self, features: jax.Array, lams: jax.Array, *, train: bool = True) -> tuple[jax.Array, jax.Array]:
    """Masks for mixing N images.

    Args:
      features: [N, B, h, w, C], the (EMA) features of each image to mix; h == w.
      lams: [N], each image's lambda (for N = 2: lam and 1 - lam); read only with `lam_concat`.

    Returns:
      (logits [B, h, w, N] before upsampling, masks [B, H, W, N] summing to 1 over N at every pixel).
    """
    num, batch, height, width, _ = features.shape
    d = self.in_channels // self.reduction
    if self.lam_concat:
      features = _with_lambda_channel(features, lams)
    features = features.astype(jnp.float32).reshape(num, batch, height * width, -1)
    q = _Projection(d, relu=True, norm=self.attention_norm, name="conv_q")(features, train=train)  # [N, B, hw, d]
    k = _Projection(d, relu=True, norm=self.attention_norm, name="conv_k")(features, train=train)
    v = nn.Dense(1, kernel_init=GENERATOR_INIT, name="conv_v")(features)  # [N, B, hw, 1]
    if num == 2:  # normal_mix: image 1 attends to image 2 and vice versa.
      scores = jnp.einsum("nbid,nbjd->nbij", q, k[::-1])
    else:  # co_mix: scores summed over the other images (not averaged).
      all_pairs = jnp.einsum("nbid,mbjd->nmbij", q, k)
      scores = jnp.sum(all_pairs, axis=1) - jnp.einsum("nbid,nbjd->nbij", q, k)
    if self.use_scale:
      scores = scores / jnp.sqrt(jnp.float32(d))
    scores = jnp.clip(scores, -1e25, 1e25)  # The original clamps infinite scores.
    attention = jax.nn.softmax(scores, axis=-1)
    # As the original: row i of A_n indexes positions of image n, column j the other image's, and the
    # column is contracted with image n's own values.
    logits = jnp.einsum("nbij,nbjo->nbio", attention, v)[..., 0]  # [N, B, hw]
    fallback = jnp.where(jnp.arange(num) == 0, 1e-4, 1e4)[:, None, None] if num == 2 else 0.3
    logits = jnp.where(jnp.isnan(logits), fallback, logits)
    logits = jnp.moveaxis(logits, 0, -1).reshape(batch, height, width, num)
    masks = jax.nn.softmax(upsample(logits, self.scale_factor, self.upsample_mode), axis=-1)
    return logits, masks


def rescale_lam(lam: jax.Array, k: float) -> jax.Array:
  """SAMix's lambda rescaling (OpenMixup `rescale_lam_mult`): a cubic through (0, 0) and (1, 1) that bends
  lambda towards 0.5 less as k grows; (4/3 lam^3 - 2 lam^2 + (k + 1) lam) / (k + 1/3)."""
  return (4 / 3 * lam**3 - 2 * lam**2 + (k + 1) * lam) / (k + 1 / 3)


class _ValueNeck(nn.Module):
  """SAMix's non-linear value: 1x1 conv (no bias) -> BN -> ELU -> 1x1 conv to one channel (no bias)."""

  hidden: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = nn.Dense(self.hidden, use_bias=False, kernel_init=GENERATOR_INIT, name="conv1")(x)
    x = nn.elu(BatchNorm(name="bn")(x, train=train))
    return nn.Dense(1, use_bias=False, kernel_init=GENERATOR_INIT, name="conv2")(x)


class MixBlock(nn.Module):
  """AutoMix's Mix Block (OpenMixup `PixelMixBlock`): a two-image mask from cross attention and a sigmoid.

  As AutoMix configures it, the query and key share one 1x1 convolution without activation and the value
  reads the shuffled image. SAMix's options (all off for AutoMix):

  Attributes:
    lam_mul_k: None, or SAMix's lambda encoding: the features of x and x[perm] are multiplied by
      1 + r and 2 - r, r = rescale_lam(lam, lam_mul_k).
    value_hidden: 0 (a 1x1 convolution), or the hidden width of SAMix's non-linear value (`_ValueNeck`).
    qk_concat: query and key are two convolutions, each of the concatenated features [x, x[perm]].
  """

  in_channels: int
  reduction: int = 2
  lam_concat: bool = False
  upsample_mode: str = "nearest"
  scale_factor: int = 4
  use_scale: bool = True
  lam_mul_k: float | None = None
  value_hidden: int = 0
  qk_concat: bool = False

  @nn.compact
  def __call__(self, features: jax.Array, lam: jax.Array, *, train: bool = True) -> jax.Array:
    """Masks for mixing x (weight lam) with x[perm].

    Args:
      features: [2, B, h, w, C]: the features of x and of x[perm].
      lam: scalar, the weight of x (read with `lam_concat` or `lam_mul_k`).
      train: the value neck's BN normalises with the batch statistics (always so in training).

    Returns:
      masks [B, H, W, 2]: channel 0 weights x, channel 1 (the sigmoid output m_b) weights x[perm].
    """
    _, batch, height, width, _ = features.shape
    d = self.in_channels // self.reduction
    if self.lam_concat:
      features = _with_lambda_channel(features, jnp.stack([lam, 1 - lam]))
    features = features.astype(jnp.float32).reshape(2, batch, height * width, -1)
    if self.lam_mul_k is not None:
      r = rescale_lam(jnp.asarray(lam, jnp.float32), self.lam_mul_k)
      features = features * jnp.stack([1 + r, 2 - r])[:, None, None, None]
    if self.value_hidden:
      v = _ValueNeck(self.value_hidden, name="value")(features[1], train=train)  # [B, hw, 1]
    else:
      v = nn.Dense(1, kernel_init=GENERATOR_INIT, name="value")(features[1])
    if self.qk_concat:
      both = jnp.concatenate([features[0], features[1]], axis=-1)
      q = nn.Dense(d, kernel_init=GENERATOR_INIT, name="query")(both)
      k = nn.Dense(d, kernel_init=GENERATOR_INIT, name="key")(both)
    else:
      query = nn.Dense(d, kernel_init=GENERATOR_INIT, name="query")
      q, k = query(features[0]), query(features[1])  # [B, hw, d]
    scores = jnp.einsum("bid,bjd->bij", q, k)
    if self.use_scale:
      scores = scores / jnp.sqrt(jnp.float32(d))
    logits = jnp.einsum("bij,bjo->bio", jax.nn.softmax(scores, axis=-1), v).reshape(batch, height, width, 1)
    shuffled = jax.nn.sigmoid(upsample(logits, self.scale_factor, self.upsample_mode))
    return jnp.concatenate([1 - shuffled, shuffled], axis=-1)


def mask_loss(masks: jax.Array, lam: jax.Array, margin: float = 0.1, variance: bool = False) -> jax.Array:
  """AutoMix's "L1" mask loss: `max(|1 - mean(m_b) - lam| - margin, 0)`, m_b = masks[..., 1] [B, H, W].

  variance: SAMix's "L1+Variance": also subtracts 2 Var(m_b), the variance over the batch and the pixels
  together, which rewards masks far from a constant.
  """
  m_b = masks[..., 1]
  loss = jnp.maximum(jnp.abs(1 - jnp.mean(m_b) - lam) - margin, 0.0)
  return loss - 2 * jnp.mean((m_b - jnp.mean(m_b)) ** 2) if variance else loss
