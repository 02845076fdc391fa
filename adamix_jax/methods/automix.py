"""AutoMix (OpenMixup `AutoMixup`; ADAUTOMIX.md C): a Mix Block trained cooperatively through the EMA teacher.

Per iteration, on each device's shard: one permutation pi and two independent lambdas ~ Beta(alpha,
alpha) (lambda_mb for the generator, lambda_bb for the classifier); the teacher's clean pass gives the
stage features; the Mix Block makes the generator's mask (differentiable) and the classifier's (detached;
vanilla mixup when lambda_bb is within `automix.lam_margin` of 0 or 1). The loss is
  CE(head_one(x)) + mixup CE(head_mix(x_bb)) + mixup CE(teacher head_mix(x_mb)) + w * mask_loss,
always cooperative, with no cosine term; gradients reach the Mix Block only through the frozen teacher.
"""

import jax
import jax.numpy as jnp

from adamix_jax import generators, losses
from adamix_jax.methods.adautomix import AdAutoMixPlan
from adamix_jax.methods.base import Method, Networks, init_with_generator, stage_shape, teacher_features, train_pass
from adamix_jax.mixing import mix, mix_sources


def sample_plan(key: jax.Array, batch_size: int, alpha: float) -> AdAutoMixPlan:
  """One permutation for both pairs (identity, pi); lambda_mb, lambda_bb ~ Beta(alpha, alpha) independently."""
  perm_key, lam_key = jax.random.split(key)
  pair = jnp.stack([jnp.arange(batch_size), jax.random.permutation(perm_key, batch_size)])
  lam = jax.random.beta(lam_key, alpha, alpha, (2,)).astype(jnp.float32)
  return AdAutoMixPlan(pair, pair, jnp.stack([lam[0], 1 - lam[0]]), jnp.stack([lam[1], 1 - lam[1]]))


class AutoMix(Method):
  """AutoMix with OpenMixup's CIFAR defaults (config.automix, config.generator)."""

  name = "automix"
  head_names = ("one", "mix")
  reported = "ema/one"

  def build_networks(self, classifier, image_shape) -> Networks:
    features = stage_shape(classifier, image_shape, self.config.generator.feature_stage)
    generator = generators.MixBlock(
      in_channels=features[-1],
      reduction=self.config.generator.reduction,
      lam_concat=self.config.generator.lam_concat,
      upsample_mode=self.config.generator.upsample_mode,
      scale_factor=image_shape[0] // features[1],
    )
    return Networks(classifier, generator)

  def init_variables(self, nets, rng, images):
    init = lambda key, features: nets.generator.init(key, features, jnp.float32(0.5))
    return init_with_generator(nets, rng, images, self.config.generator.feature_stage, 2, init)

  def sample_plan(self, key: jax.Array, batch_size: int) -> AdAutoMixPlan:
    return sample_plan(key, batch_size, self.config.mixup.alpha)

  def preview(self, nets, state, images, labels, rng):
    plan = self.sample_plan(rng, labels.shape[0])
    features = teacher_features(nets, state, images, self.config.generator.feature_stage)
    masks = nets.generator.apply({"params": state.params["generator"]}, features[plan.mb_perms], plan.mb_lams[0])
    return mix_sources(images, labels, plan.mb_perms, plan.mb_lams, masks)

  def loss(self, nets, params, state, batch, rng):
    options = self.config.automix
    images, labels = batch["images"], batch["labels"]
    plan = self.sample_plan(rng, labels.shape[0])
    teacher_params = jax.lax.stop_gradient(state.ema_params)
    clean_k, teacher_stats = train_pass(nets.classifier, teacher_params, state.batch_stats["teacher"], images)
    features = jax.lax.stop_gradient(clean_k.stages[self.config.generator.feature_stage])

    def masks(perms, lams):
      return nets.generator.apply({"params": params["generator"]}, features[perms], lams[0])

    masks_mb = masks(plan.mb_perms, plan.mb_lams)
    lam_bb = plan.bb_lams[0]
    vanilla = (lam_bb < options.lam_margin) | (1 - lam_bb < options.lam_margin)
    masks_bb = jax.lax.stop_gradient(masks(plan.bb_perms, plan.bb_lams))
    masks_bb = jnp.where(vanilla, jnp.broadcast_to(plan.bb_lams, masks_bb.shape), masks_bb)

    mixed_k, teacher_stats = train_pass(
      nets.classifier, teacher_params, teacher_stats, mix(images, plan.mb_perms, masks_mb)
    )
    loss_mix_k = losses.multi_source_mixup_cross_entropy(mixed_k.logits["mix"], labels[plan.mb_perms], plan.mb_lams)
    loss_mask = options.mask_loss * generators.mask_loss(masks_mb, plan.mb_lams[0], options.mask_margin)

    clean_q, stats = train_pass(nets.classifier, params["classifier"], state.batch_stats["classifier"], images)
    mixed_q, stats = train_pass(nets.classifier, params["classifier"], stats, mix(images, plan.bb_perms, masks_bb))
    loss_one = losses.cross_entropy(clean_q.logits["one"], labels)
    loss_mix_q = losses.multi_source_mixup_cross_entropy(mixed_q.logits["mix"], labels[plan.bb_perms], plan.bb_lams)
    loss = loss_one + loss_mix_q + loss_mix_k + loss_mask
    metrics = {
      "loss": loss,
      "accuracy": jnp.mean(jnp.argmax(clean_q.logits["one"], -1) == labels),
      "loss_one": loss_one,
      "loss_mix_q": loss_mix_q,
      "loss_mix_k": loss_mix_k,
      "loss_mask": loss_mask,
    }
    return loss, ({"classifier": stats, "teacher": teacher_stats}, metrics)
