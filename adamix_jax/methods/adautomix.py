"""AdAutoMix (ADAUTOMIX.md A): an adversarial mask generator, a classifier, an EMA teacher, one step.

Per iteration (A.9), on each device's shard:
  1. draw the plan (`sample_plan`): N, the generator ("mb") and classifier ("bb") permutation tuples, lambda;
  2. one teacher pass on the clean batch (train-mode BN) gives the stage features the generator reads and
     the head_mix logits of the cosine term;
  3. the generator makes masks for both tuples; the classifier's are detached, with the lam_margin fallback;
  4. a teacher pass on the generator's mixed batch gives L_mixk and the cosine term S (gradients reach the
     generator through the frozen teacher);
  5. the classifier passes (clean, [vanilla N-mix], generator-mixed) give L_C;
  6. L = L_C + L_G, L_G = -beta L_mixk + (1 - beta) S on even steps and L_mixk on odd ones (from `state.step`).
The step then takes one optimiser update (both groups) and the EMA update of the teacher's parameters.

Passes: 3 classifier forward/backward (2 for N = 2), 1 clean teacher forward and 1 teacher
forward/backward to the input. The original runs N more clean teacher passes for the cosine logits and
their BN updates; those logits equal the clean pass's permuted (BN is permutation invariant in train mode)
and the N running-statistics updates are replayed arithmetically (`replay_batch_norm_update`).
"""

import flax
import jax
import jax.numpy as jnp

from adamix_jax import generators, losses
from adamix_jax.methods.base import Method, Networks, init_with_generator, stage_shape, teacher_features, train_pass
from adamix_jax.mixing import mix, mix_sources
from adamix_jax.models.layers import replay_batch_norm_update

COSINE_TERMS = ("minimize_similarity", "maximize_similarity")


@flax.struct.dataclass
class AdAutoMixPlan:
  """One iteration's draws (A.2).

  Attributes:
    mb_perms: int [N, B], the generator tuple (for N = 2: identity, then index_mb).
    bb_perms: int [N, B], the classifier tuple (for N = 2: identity, then index_bb).
    mb_lams, bb_lams: float32 [N], each source's weight (sum 1). For N = 2 they are independent draws;
      for N >= 3 one draw normalised to sum 1, shared by both tuples.
  """

  mb_perms: jax.Array
  bb_perms: jax.Array
  mb_lams: jax.Array
  bb_lams: jax.Array


def sample_plan(key: jax.Array, batch_size: int, num_mix: int, alpha: float) -> AdAutoMixPlan:
  """Draws an AdAutoMix plan: lambda ~ Beta(alpha, alpha) per source, permutations with self-pairing allowed."""
  lam_key, *perm_keys = jax.random.split(key, 2 * num_mix + 1)
  perms = jnp.stack([jax.random.permutation(k, batch_size) for k in perm_keys])
  raw = jax.random.beta(lam_key, alpha, alpha, (num_mix,)).astype(jnp.float32)
  if num_mix == 2:
    identity = jnp.arange(batch_size)
    return AdAutoMixPlan(
      mb_perms=jnp.stack([identity, perms[1]]),
      bb_perms=jnp.stack([identity, perms[0]]),
      mb_lams=jnp.stack([raw[0], 1 - raw[0]]),
      bb_lams=jnp.stack([raw[1], 1 - raw[1]]),
    )
  lams = raw / jnp.sum(raw)
  return AdAutoMixPlan(perms[:num_mix], perms[num_mix:], lams, lams)


def cosine_similarity(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
  """torch.nn.CosineSimilarity(dim=-1, eps): [..., D] x [..., D] -> [...]."""
  norms = jnp.maximum(jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1), eps)
  return jnp.sum(a * b, axis=-1) / norms


class AdAutoMix(Method):
  """Adversarial AutoMixup with the official defaults (config.adautomix, config.generator)."""

  name = "adautomix"
  head_names = ("one", "mix")
  reported = "ema/one"  # ADAUTOMIX.md A.8: the EMA one-hot head.

  def build_networks(self, classifier, image_shape) -> Networks:
    """Adds the AdaptiveMask generator sized for the feature map at `config.generator.feature_stage`."""
    features = stage_shape(classifier, image_shape, self.config.generator.feature_stage)
    options = self.config.generator
    generator = generators.AdaptiveMask(
      in_channels=features[-1],
      reduction=options.reduction,
      lam_concat=options.lam_concat,
      upsample_mode=options.upsample_mode,
      scale_factor=image_shape[0] // features[1],
      attention_norm=options.attention_norm,
    )
    return Networks(classifier, generator)

  def init_variables(self, nets, rng, images):
    num = self.config.adautomix.num_mix
    lams = jnp.full((num,), 1 / num)
    init = lambda key, features: nets.generator.init(key, features, lams, train=False)
    return init_with_generator(nets, rng, images, self.config.generator.feature_stage, num, init)

  def sample_plan(self, key: jax.Array, batch_size: int, num_mix: int | None = None) -> AdAutoMixPlan:
    """The plan of one step with `num_mix` images (default config.adautomix.num_mix); tests override this."""
    return sample_plan(key, batch_size, num_mix or self.config.adautomix.num_mix, self.config.mixup.alpha)

  def loss(self, nets, params, state, batch, rng):
    batch_size = batch["labels"].shape[0]
    if not self.config.adautomix.random_num:
      return self.loss_with_plan(nets, params, state, batch, self.sample_plan(rng, batch_size))
    # N uniform in {2, ..., num_mix} each iteration (the original's is_random): one branch per N, each
    # compiled once; only the drawn one runs.
    num_key, plan_key = jax.random.split(rng)
    choices = range(2, self.config.adautomix.num_mix + 1)
    branches = [
      lambda p, n=n: self.loss_with_plan(nets, p, state, batch, self.sample_plan(plan_key, batch_size, n))
      for n in choices
    ]
    return jax.lax.switch(jax.random.randint(num_key, (), 0, len(choices)), branches, params)

  def preview(self, nets, state, images, labels, rng):
    plan = self.sample_plan(rng, labels.shape[0])
    features = teacher_features(nets, state, images, self.config.generator.feature_stage)
    generator_stats = state.batch_stats.get("generator")
    masks, _ = self._masks(nets, state.params, generator_stats, features, plan.mb_perms, plan.mb_lams)
    return mix_sources(images, labels, plan.mb_perms, plan.mb_lams, masks)

  def _masks(self, nets, params, generator_stats, features, perms, lams):
    """Generator masks [B, H, W, N] for features[perms] and the generator's updated BN statistics (or None)."""
    variables = {"params": params["generator"]}
    if generator_stats is None:
      return nets.generator.apply(variables, features[perms], lams)[1], None
    variables["batch_stats"] = generator_stats
    (_, masks), updates = nets.generator.apply(variables, features[perms], lams, mutable=["batch_stats"])
    return masks, updates["batch_stats"]

  def loss_with_plan(self, nets: Networks, params, state, batch, plan: AdAutoMixPlan):
    """The total loss of one shard under a given plan; see the module docstring for the terms."""
    options = self.config.adautomix
    images, labels = batch["images"], batch["labels"]
    num = plan.mb_perms.shape[0]
    teacher_params = jax.lax.stop_gradient(state.ema_params)

    # Teacher on the clean batch: generator features and the cosine term's logits, from one pass.
    clean_k, after_clean = train_pass(nets.classifier, teacher_params, state.batch_stats["teacher"], images)
    features = jax.lax.stop_gradient(clean_k.stages[self.config.generator.feature_stage])
    clean_logits_k = jax.lax.stop_gradient(clean_k.logits["mix"])

    # Masks: the generator's tuple (differentiable) and the classifier's (detached, lam_margin fallback).
    generator_stats = state.batch_stats.get("generator")
    masks_mb, generator_stats = self._masks(nets, params, generator_stats, features, plan.mb_perms, plan.mb_lams)
    masks_bb, generator_stats = self._masks(nets, params, generator_stats, features, plan.bb_perms, plan.bb_lams)
    masks_bb = jax.lax.stop_gradient(masks_bb)
    lam = plan.bb_lams[0]
    margin = options.lam_margin
    too_small = (lam <= margin) | ((1 - lam <= margin) if num == 2 else (1 - lam < margin))
    masks_bb = jnp.where(too_small, jnp.broadcast_to(plan.bb_lams, masks_bb.shape), masks_bb)
    mixed_mb = mix(images, plan.mb_perms, masks_mb)
    mixed_bb = mix(images, plan.bb_perms, masks_bb)

    # Generator side: the frozen teacher on the generator's mixed batch.
    mixed_k, after_mixed = train_pass(nets.classifier, teacher_params, after_clean, mixed_mb)
    mixed_logits_k = mixed_k.logits["mix"].astype(jnp.float32)
    loss_mix_k = losses.multi_source_mixup_cross_entropy(mixed_logits_k, labels[plan.mb_perms], plan.mb_lams)
    cosines = cosine_similarity(mixed_logits_k[None], clean_logits_k[plan.mb_perms])  # [N, B]
    similarity = jnp.mean(jnp.sum(plan.mb_lams[:, None] * cosines, axis=0))
    cosine_term = similarity if options.cosine_term == "minimize_similarity" else 1 - similarity
    teacher_stats = replay_batch_norm_update(state.batch_stats["teacher"], after_clean, after_mixed, num)

    # Classifier side: separate BN passes in the original's order (clean, [vanilla N-mix], mixed).
    def classifier(stats, x):
      output, stats = train_pass(nets.classifier, params["classifier"], stats, x)
      return output.logits, stats

    clean_logits, stats = classifier(state.batch_stats["classifier"], images)
    loss_one = losses.cross_entropy(clean_logits["one"], labels)
    bb_labels = labels[plan.bb_perms]
    metrics = {"loss_vmix": jnp.zeros_like(loss_one)}  # Device-varying like the N >= 3 value (lax.switch).
    if num >= 3:
      vanilla_logits, stats = classifier(stats, mix(images, plan.bb_perms, plan.bb_lams))
      loss_vmix = losses.multi_source_mixup_cross_entropy(vanilla_logits["mix"], bb_labels, plan.bb_lams)
      metrics["loss_vmix"] = loss_vmix
    mixed_logits, stats = classifier(stats, mixed_bb)
    loss_mix_q = losses.multi_source_mixup_cross_entropy(mixed_logits["mix"], bb_labels, plan.bb_lams)
    if num >= 3:
      ratio = options.mixup_ratio
      loss_classifier = loss_mix_q + (1 - ratio) * loss_one + ratio * loss_vmix
    else:
      loss_classifier = loss_mix_q + loss_one

    adversarial = state.step % options.adversarial_period == 0
    beta = options.beta
    loss_generator = jnp.where(adversarial, -beta * loss_mix_k + (1 - beta) * cosine_term, loss_mix_k)
    loss = loss_classifier + loss_generator

    batch_stats = {"classifier": stats, "teacher": teacher_stats}
    if generator_stats is not None:
      batch_stats["generator"] = generator_stats
    metrics.update(
      loss=loss,
      accuracy=jnp.mean(jnp.argmax(clean_logits["one"], -1) == labels),
      loss_one=loss_one,
      loss_mix_q=loss_mix_q,
      loss_mix_k=loss_mix_k,
      cosine=similarity,
    )
    return loss, (batch_stats, metrics)
