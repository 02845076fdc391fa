"""SAMix (OpenMixup `AutoMixup` with SAMix's `PixelMixBlock`; docs/method.md#samix): AutoMix's iteration with
a Mix Block that encodes lambda, concatenates both images for its query and key and has a non-linear value,
and a mask loss that also rewards varied masks.

The iteration, the plan and the loss are AutoMix's (`automix.py`), with three differences:
  - the generator: `generators.MixBlock` with `lam_mul_k`, `value_hidden` and `qk_concat` (SAMix's options);
  - the mask loss: "L1+Variance", AutoMix's L1 term minus 2 Var(m_b);
  - with probability `samix.mask_adjust` per iteration, the classifier's detached masks are rescaled so that
    each image's mean weight of x is lambda_mb (the reference uses the generator's lambda here, not the
    classifier's: kept), before the margin rule.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import generators
from adamix_jax.config import ConfigError
from adamix_jax.methods.automix import AutoMix, AutoMixOptions, sample_plan
from adamix_jax.options import non_negative, option, unit_interval

ADJUST_EPSILON = 1e-8  # The reference's clamp and tie tolerance in the mask adjustment.


@dataclasses.dataclass(frozen=True)
class SAMixOptions(AutoMixOptions):
  """AutoMix's options and SAMix's own (`config.samix`)."""

  lam_mul_k: float = option("samix.lam_mul_k", non_negative)  # k of the lambda rescaling (rescale_lam).
  mask_adjust: float = option("samix.mask_adjust", unit_interval)  # Probability of rescaling the bb masks.

  def check(self):
    if self.generator.lam_concat:
      raise ConfigError(
        "config.generator.lam_concat = True does not apply to samix: SAMix encodes lambda by scaling the "
        "features (config.samix.lam_mul_k). Set it to False."
      )


def adjust_masks(masks: jax.Array, lam: jax.Array) -> jax.Array:
  """Rescales two-image masks [B, H, W, 2] so each image's mean weight of x (channel 0) is `lam`.

  As the reference: with m = clip(masks[..., 0], eps, 1 - eps) and mu its mean over the pixels, an image
  with mu > lam gets channel 0 = m * lam / mu; one with mu < lam gets channel 1 = (1 - m)(1 - lam)/(1 - mu);
  the other channel is the complement. An image within eps of lam is left as it was.
  """
  own = jnp.clip(masks[..., 0], ADJUST_EPSILON, 1 - ADJUST_EPSILON)[..., None]  # [B, H, W, 1]
  mean = jnp.mean(own, axis=(1, 2), keepdims=True)
  shrunk = own * (lam / mean)
  partner = (1 - own) * ((1 - lam) / (1 - mean))
  larger = jnp.concatenate([shrunk, 1 - shrunk], axis=-1)
  smaller = jnp.concatenate([1 - partner, partner], axis=-1)
  return jnp.where(mean > lam + ADJUST_EPSILON, larger, jnp.where(mean < lam - ADJUST_EPSILON, smaller, masks))


class SAMix(AutoMix):
  """SAMix (its options: SAMixOptions; OpenMixup's CIFAR defaults are base_config()'s)."""

  name = "samix"
  Options = SAMixOptions

  def default_plan(self, key, step, batch_size, num_mix):
    del step, num_mix  # Always two images.
    plan_key, adjust_key = jax.random.split(key)
    plan = sample_plan(plan_key, batch_size, self.options.alpha)
    return plan.replace(adjust_bb=jax.random.uniform(adjust_key) < self.options.mask_adjust)

  def make_generator(self, in_channels, scale_factor):
    options = self.options.generator
    return generators.MixBlock(
      in_channels=in_channels,
      reduction=options.reduction,
      upsample_mode=options.upsample_mode,
      scale_factor=scale_factor,
      lam_mul_k=self.options.lam_mul_k,
      value_hidden=in_channels // options.reduction,
      qk_concat=True,
    )

  def adjust_classifier_masks(self, masks_bb, plan):
    return jnp.where(plan.adjust_bb, adjust_masks(masks_bb, plan.mb_lams[0]), masks_bb)

  def mask_loss(self, masks_mb, lam_mb):
    options = self.options
    return options.mask_loss * generators.mask_loss(masks_mb, lam_mb, options.mask_margin, variance=True)
