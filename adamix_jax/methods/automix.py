"""AutoMix (OpenMixup `AutoMixup`; docs/method.md#automix): a Mix Block trained cooperatively through the teacher.

Per iteration, on each device's shard, after the learned-mixup skeleton (`LearnedMixup.generate`): two
independent permutations, pi_bb for the classifier and pi_mb for the Mix Block, and two independent
lambdas ~ Beta(alpha, alpha), lambda_mb and lambda_bb; the classifier's batch falls back to vanilla mixup
when lambda_bb is within `automix.lam_margin` of 0 or 1. The loss is::

  CE(head_one(x)) + mixup CE(head_mix(x_bb)) + mixup CE(teacher head_mix(x_mb)) + w * mask_loss,

always cooperative, with no cosine term; gradients reach the Mix Block only through the frozen teacher.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import generators
from adamix_jax.methods.base import SupervisedOptions
from adamix_jax.methods.learned_mixup import (
  LearnedMixPlan,
  LearnedMixup,
  apply_generator,
  classifier_passes,
  updated_batch_stats,
)
from adamix_jax.mixing import mask_spatial_std
from adamix_jax.options import non_negative, option, positive, unit_interval


@dataclasses.dataclass(frozen=True)
class AutoMixOptions(SupervisedOptions):
  """Everything AutoMix's loss reads (`config.automix`, the generator, mixup.alpha, label smoothing)."""

  alpha: float = option("mixup.alpha", positive)  # lambda_mb, lambda_bb ~ Beta(alpha, alpha).
  lam_margin: float = option("automix.lam_margin", unit_interval)  # Vanilla mixup this close to 0 or 1.
  mask_loss: float = option("automix.mask_loss", non_negative)  # Weight of the mask loss.
  mask_margin: float = option("automix.mask_margin", unit_interval)  # Area errors ignored up to this.
  generator: generators.GeneratorOptions = option("generator")


def sample_plan(key: jax.Array, batch_size: int, alpha: float) -> LearnedMixPlan:
  """Two independent pairs, (identity, pi_mb) and (identity, pi_bb), and lambda_mb, lambda_bb ~ Beta(alpha, alpha).

  Self-pairing is allowed (the CIFAR configs leave `mix_shuffle_no_repeat` off), so a pair of the
  classifier's batch is never tied to a pair the Mix Block just mixed.
  """
  bb_key, mb_key, lam_key = jax.random.split(key, 3)
  identity = jnp.arange(batch_size)
  lam_mb, lam_bb = jax.random.beta(lam_key, alpha, alpha, (2,)).astype(jnp.float32)
  return LearnedMixPlan(
    mb_perms=jnp.stack([identity, jax.random.permutation(mb_key, batch_size)]),
    bb_perms=jnp.stack([identity, jax.random.permutation(bb_key, batch_size)]),
    mb_lams=jnp.stack([lam_mb, 1 - lam_mb]),
    bb_lams=jnp.stack([lam_bb, 1 - lam_bb]),
  )


class AutoMix(LearnedMixup):
  """AutoMix (its options: AutoMixOptions; OpenMixup's CIFAR defaults are base_config()'s)."""

  name = "automix"
  Options = AutoMixOptions

  @property
  def lam_margin(self) -> float:
    return self.options.lam_margin

  def default_plan(self, key, step, batch_size, num_mix):
    del step, num_mix  # Always two images.
    return sample_plan(key, batch_size, self.options.alpha)

  def make_generator(self, in_channels, scale_factor):
    options = self.options.generator
    return generators.MixBlock(
      in_channels=in_channels,
      reduction=options.reduction,
      lam_concat=options.lam_concat,
      upsample_mode=options.upsample_mode,
      scale_factor=scale_factor,
    )

  def init_generator(self, generator, key, features):
    return generator.init(key, features, jnp.float32(0.5), train=False)

  def generator_masks(self, generator, variables, features, lams):
    return apply_generator(generator, variables, features, lams[0])

  def mask_loss(self, masks_mb: jax.Array, lam_mb: jax.Array) -> jax.Array:
    """The weighted mask loss of the generator's masks [B, H, W, 2] ("L1")."""
    options = self.options
    return options.mask_loss * generators.mask_loss(masks_mb, lam_mb, options.mask_margin)

  def loss_with_plan(self, nets, params, state, batch, plan, rng=None):
    images, labels = batch["images"], batch["labels"]
    generated = self.generate(nets, params, state, images, plan, rng)
    mixed_logits_k = generated.mixed_teacher.logits["mix"]
    loss_mix_k = self.mixup_cross_entropy(mixed_logits_k, labels[plan.mb_perms], plan.mb_lams)
    loss_mask = self.mask_loss(generated.masks_mb, plan.mb_lams[0])

    (clean, mixed), classifier_stats = classifier_passes(
      nets.classifier, params["classifier"], state.batch_stats["classifier"], images, generated.mixed_bb, rng=rng
    )
    loss_one = self.cross_entropy(clean["one"], labels)
    loss_mix_q = self.mixup_cross_entropy(mixed["mix"], labels[plan.bb_perms], plan.bb_lams)
    loss = loss_one + loss_mix_q + loss_mix_k + loss_mask
    metrics = {
      "loss": loss,
      "accuracy": jnp.mean(jnp.argmax(clean["one"], -1) == labels),
      "loss_one": loss_one,
      "loss_mix_q": loss_mix_q,
      "loss_mix_k": loss_mix_k,
      "loss_mask": loss_mask,
      "mask_std": mask_spatial_std(jax.lax.stop_gradient(generated.masks_mb)),
    }
    batch_stats = updated_batch_stats(classifier_stats, generated.teacher_stats, generated.generator_stats)
    return loss, (batch_stats, metrics)
