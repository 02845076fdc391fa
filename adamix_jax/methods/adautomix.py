"""AdAutoMix (docs/method.md#adautomix): an adversarial mask generator, a classifier, an EMA teacher, one step.

Per iteration, on each device's shard, after the learned-mixup skeleton (`LearnedMixup.generate`: plan,
clean teacher pass, masks, the teacher on the generator's mixed batch):

  - the generator's loss: the teacher's mixup cross-entropy L_mixk of the generator's batch and the
    cosine similarity S of its logits to the clean ones; L_G = -beta L_mixk + (1 - beta) S on
    adversarial steps (step % adversarial_period == 0), L_mixk on the others;
  - the classifier's loss from separate BN passes (clean, [vanilla N-mix], classifier-mixed):
    L_C = L_mixq + (1 - r) L_one + r L_vmix for N >= 3, L_mixq + L_one for N = 2;
  - L = L_C + L_G, one backward pass for both parameter groups.

Passes: 3 classifier forward/backward (2 for N = 2), 1 clean teacher forward and 1 teacher
forward/backward to the input. The original runs N more clean teacher passes for the cosine logits and
their BN updates; those logits equal the clean pass's permuted (BN is permutation invariant in train mode)
and the N running-statistics updates are replayed arithmetically (`replay_batch_norm_update`).
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
from adamix_jax.mixing import mask_spatial_std, mix
from adamix_jax.models.layers import replay_batch_norm_update
from adamix_jax.options import at_least, one_of, option, positive, unit_interval

COSINE_TERMS = ("minimize_similarity", "maximize_similarity")


@dataclasses.dataclass(frozen=True)
class AdAutoMixOptions(SupervisedOptions):
  """Everything AdAutoMix's loss reads (`config.adautomix`, the generator, mixup.alpha, label smoothing);
  the official CIFAR defaults are base_config()'s."""

  alpha: float = option("mixup.alpha", positive)  # Each source's lambda ~ Beta(alpha, alpha).
  num_mix: int = option("adautomix.num_mix", at_least(2))  # N, images mixed per sample.
  random_num: bool = option("adautomix.random_num")  # N uniform in {2, ..., num_mix} every iteration.
  beta: float = option("adautomix.beta", unit_interval)  # Adversarial CE against the cosine term.
  mixup_ratio: float = option("adautomix.mixup_ratio", unit_interval)  # N >= 3: vanilla N-mixup vs clean CE.
  lam_margin: float = option("adautomix.lam_margin", unit_interval)  # Constant masks this close to 0 or 1.
  adversarial_period: int = option("adautomix.adversarial_period", positive)  # Steps 0, P, 2P... adversarial.
  cosine_term: str = option("adautomix.cosine_term", one_of(COSINE_TERMS))
  generator: generators.GeneratorOptions = option("generator")


def sample_plan(key: jax.Array, batch_size: int, num_mix: int, alpha: float) -> LearnedMixPlan:
  """Draws an AdAutoMix plan: lambda ~ Beta(alpha, alpha) per source, permutations with self-pairing allowed.

  N = 2: the generator pairs (identity, pi_mb) with weights (lam_0, 1 - lam_0), the classifier pairs
  (identity, pi_bb) with (lam_1, 1 - lam_1): two independent draws. N >= 3: two tuples of N permutations
  (none the identity) sharing one weight vector lam / sum(lam).
  """
  lam_key, *perm_keys = jax.random.split(key, 2 * num_mix + 1)
  perms = jnp.stack([jax.random.permutation(k, batch_size) for k in perm_keys])
  raw = jax.random.beta(lam_key, alpha, alpha, (num_mix,)).astype(jnp.float32)
  if num_mix == 2:
    identity = jnp.arange(batch_size)
    return LearnedMixPlan(
      mb_perms=jnp.stack([identity, perms[1]]),
      bb_perms=jnp.stack([identity, perms[0]]),
      mb_lams=jnp.stack([raw[0], 1 - raw[0]]),
      bb_lams=jnp.stack([raw[1], 1 - raw[1]]),
    )
  lams = raw / jnp.sum(raw)
  return LearnedMixPlan(perms[:num_mix], perms[num_mix:], lams, lams)


def cosine_similarity(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
  """torch.nn.CosineSimilarity(dim=-1, eps): [..., D] x [..., D] -> [...]."""
  norms = jnp.maximum(jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1), eps)
  return jnp.sum(a * b, axis=-1) / norms


class AdAutoMix(LearnedMixup):
  """Adversarial AutoMixup (its options: AdAutoMixOptions)."""

  name = "adautomix"
  Options = AdAutoMixOptions

  @property
  def num_mix(self) -> int:
    return self.options.num_mix

  @property
  def lam_margin(self) -> float:
    return self.options.lam_margin

  def default_plan(self, key, step, batch_size, num_mix):
    del step
    return sample_plan(key, batch_size, num_mix, self.options.alpha)

  def make_generator(self, in_channels, scale_factor):
    options = self.options.generator
    return generators.AdaptiveMask(
      in_channels=in_channels,
      reduction=options.reduction,
      lam_concat=options.lam_concat,
      upsample_mode=options.upsample_mode,
      scale_factor=scale_factor,
      attention_norm=options.attention_norm,
    )

  def init_generator(self, generator, key, features):
    lams = jnp.full((features.shape[0],), 1 / features.shape[0])
    return generator.init(key, features, lams, train=False)

  def generator_masks(self, generator, variables, features, lams):
    (_, masks), stats = apply_generator(generator, variables, features, lams)
    return masks, stats

  def loss(self, nets, params, state, batch, rng):
    if not self.options.random_num:
      return super().loss(nets, params, state, batch, rng)
    # N uniform in {2, ..., num_mix} each iteration (the original's is_random): one branch per N, each
    # compiled once; only the drawn one runs.
    num_key, plan_key = jax.random.split(rng)
    batch_size = batch["labels"].shape[0]
    choices = range(2, self.num_mix + 1)
    branches = [
      lambda p, n=n: self.loss_with_plan(
        nets, p, state, batch, self.sample_plan(plan_key, state.step, batch_size, n), rng
      )
      for n in choices
    ]
    return jax.lax.switch(jax.random.randint(num_key, (), 0, len(choices)), branches, params)

  def loss_with_plan(self, nets, params, state, batch, plan, rng=None):
    options = self.options
    images, labels = batch["images"], batch["labels"]
    num = plan.mb_perms.shape[0]
    generated = self.generate(nets, params, state, images, plan, rng)

    # Generator side: the frozen teacher's view of the generator's mixed batch against the clean logits.
    mixed_logits_k = generated.mixed_teacher.logits["mix"].astype(jnp.float32)
    loss_mix_k = self.mixup_cross_entropy(mixed_logits_k, labels[plan.mb_perms], plan.mb_lams)
    clean_logits_k = generated.clean_teacher.logits["mix"]
    cosines = cosine_similarity(mixed_logits_k[None], clean_logits_k[plan.mb_perms])  # [N, B]
    similarity = jnp.mean(jnp.sum(plan.mb_lams[:, None] * cosines, axis=0))
    cosine_term = similarity if options.cosine_term == "minimize_similarity" else 1 - similarity
    teacher_stats = replay_batch_norm_update(
      state.ema["batch_stats"], generated.teacher_stats_after_clean, generated.teacher_stats, num
    )

    # Classifier side: separate BN passes in the original's order (clean, [vanilla N-mix], mixed).
    bb_labels = labels[plan.bb_perms]
    batches = [images] + ([mix(images, plan.bb_perms, plan.bb_lams)] if num >= 3 else []) + [generated.mixed_bb]
    logits, classifier_stats = classifier_passes(
      nets.classifier, params["classifier"], state.batch_stats["classifier"], *batches, rng=rng
    )
    loss_one = self.cross_entropy(logits[0]["one"], labels)
    loss_mix_q = self.mixup_cross_entropy(logits[-1]["mix"], bb_labels, plan.bb_lams)
    metrics = {"loss_vmix": jnp.zeros_like(loss_one)}  # Device-varying like the N >= 3 value (lax.switch).
    if num >= 3:
      metrics["loss_vmix"] = self.mixup_cross_entropy(logits[1]["mix"], bb_labels, plan.bb_lams)
      ratio = options.mixup_ratio
      loss_classifier = loss_mix_q + (1 - ratio) * loss_one + ratio * metrics["loss_vmix"]
    else:
      loss_classifier = loss_mix_q + loss_one

    adversarial = state.step % options.adversarial_period == 0
    beta = options.beta
    loss_generator = jnp.where(adversarial, -beta * loss_mix_k + (1 - beta) * cosine_term, loss_mix_k)
    loss = loss_classifier + loss_generator

    batch_stats = updated_batch_stats(classifier_stats, teacher_stats, generated.generator_stats)
    metrics.update(
      loss=loss,
      accuracy=jnp.mean(jnp.argmax(logits[0]["one"], -1) == labels),
      loss_one=loss_one,
      loss_mix_q=loss_mix_q,
      loss_mix_k=loss_mix_k,
      cosine=similarity,
      mask_std=mask_spatial_std(jax.lax.stop_gradient(generated.masks_mb)),
    )
    return loss, (batch_stats, metrics)
