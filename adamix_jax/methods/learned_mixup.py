"""The skeleton AdAutoMix, AutoMix and SAMix share: a mask generator that reads the EMA teacher's features.

One iteration of a learned mixup, on each device's shard (docs/method.md#learned-mixups-the-shared-iteration):

  1. a plan: the generator's tuple of permutations and weights ("mb") and the classifier's ("bb");
  2. the teacher's train-mode pass on the clean batch gives the stage features the generator reads;
  3. the generator makes masks for both tuples; the classifier's are detached and replaced by constant
     masks (vanilla mixup) when its first weight is within the lam_margin of 0 or 1;
  4. the frozen teacher's pass on the generator's mixed batch (the generator's gradient flows through it).

The methods differ in the generator, the plan, the loss terms built on these pieces and the margin rule.
"""

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.config import ConfigError
from adamix_jax.methods.base import Method, Networks, train_pass
from adamix_jax.mixing import mix, mix_sources
from adamix_jax.models import ClassifierOutput


@flax.struct.dataclass
class LearnedMixPlan:
  """One iteration's draws, for the generator's batch ("mb", the original's mix block) and the classifier's
  ("bb", the original's backbone).

  Attributes:
    mb_perms: int [N, B], the generator's tuple: its mixed sample b combines images mb_perms[:, b].
    bb_perms: int [N, B], the classifier's tuple.
    mb_lams: float32 [N], each source's weight in the generator's labels (summing to 1).
    bb_lams: float32 [N], the same for the classifier's.
  """

  mb_perms: jax.Array
  bb_perms: jax.Array
  mb_lams: jax.Array
  bb_lams: jax.Array
  adjust_bb: jax.Array | bool = False  # SAMix: rescale the classifier's masks this iteration (bool scalar).


# (key, step, batch_size, num_mix) -> plan. The default draws from the key; tests inject recorded plans.
PlanSampler = Callable[[jax.Array, jax.Array, int, int], LearnedMixPlan]


@dataclasses.dataclass(frozen=True)
class GeneratedMix:
  """What the shared skeleton computes for one plan (step 2-4 of the module docstring).

  Attributes:
    clean_teacher: the teacher's output on the clean batch (stages and logits, no gradient).
    teacher_stats_after_clean: the teacher's BN statistics after that pass.
    masks_mb: [B, H, W, N] the generator's masks for its own tuple (differentiable).
    mixed_teacher: the teacher's output on the generator's mixed batch (differentiable in the generator).
    teacher_stats: the teacher's BN statistics after both passes.
    mixed_bb: [B, H, W, C] the classifier's mixed batch (detached masks, margin fallback applied).
    generator_stats: the generator's updated BN statistics, or None if it has none.
  """

  clean_teacher: ClassifierOutput
  teacher_stats_after_clean: Any
  masks_mb: jax.Array
  mixed_teacher: ClassifierOutput
  teacher_stats: Any
  mixed_bb: jax.Array
  generator_stats: Any


def apply_generator(generator: nn.Module, variables: dict, *inputs) -> tuple[Any, Any]:
  """(`generator.apply(variables, *inputs)`, its updated BN statistics, or None for a generator without BN)."""
  if "batch_stats" not in variables:
    return generator.apply(variables, *inputs), None
  output, updates = generator.apply(variables, *inputs, mutable=["batch_stats"])
  return output, updates["batch_stats"]


def updated_batch_stats(classifier_stats, teacher_stats, generator_stats) -> dict:
  """A learned mixup's `batch_stats` after an iteration (a "generator" entry only for a generator with BN)."""
  batch_stats = {"classifier": classifier_stats, "teacher": teacher_stats}
  if generator_stats is not None:
    batch_stats["generator"] = generator_stats
  return batch_stats


def falls_back_to_vanilla(lam: jax.Array, margin: float, num_mix: int) -> jax.Array:
  """Whether the classifier's batch uses constant masks: its first weight `lam` is within `margin` of 0 or 1.

  Both official implementations test lam <= margin or 1 - lam <= margin, except AdAutoMix's N >= 3
  branch, which tests 1 - lam < margin (strictly).
  """
  return (lam <= margin) | ((1 - lam <= margin) if num_mix == 2 else (1 - lam < margin))


def classifier_passes(classifier, params, batch_stats, *batches: jax.Array, rng=None) -> tuple[list[dict], Any]:
  """Separate train-mode passes over `batches` in order, each with its own BN batch statistics (and, from
  `rng`, its own drop-path key: passes 2, 3, ... of the step; the teacher's are 0 and 1).

  Returns:
    (the logits {head: [B, classes]} of each batch, the BN statistics after the last pass).
  """
  logits = []
  for index, images in enumerate(batches, start=2):
    output, batch_stats = train_pass(classifier, params, batch_stats, images, rng=rng, index=index)
    logits.append(output.logits)
  return logits, batch_stats


class LearnedMixup(Method):
  """Base of AdAutoMix, AutoMix and SAMix. Subclasses define the generator, the plan and the loss terms.

  Args:
    options: the method's options (`Options`; they hold `generator`, the GeneratorOptions).
    plan_sampler: draws the plan of each iteration (default: the method's own `default_plan`). Tests pass
      recorded plans here.
    total_steps: the run's training iterations.
  """

  head_names = ("one", "mix")
  reported = "ema/one"  # The EMA teacher's one-hot head, as the papers report.
  has_teacher = True

  def __init__(self, options, plan_sampler: PlanSampler | None = None, total_steps: int = 0):
    super().__init__(options, total_steps)
    self.sample_plan: PlanSampler = plan_sampler or self.default_plan

  @property
  def num_mix(self) -> int:
    """N, the images mixed into one sample (the largest N when it is drawn per iteration)."""
    return 2

  @property
  @abc.abstractmethod
  def lam_margin(self) -> float:
    """The classifier's batch falls back to vanilla mixup when its first weight is this close to 0 or 1."""

  @abc.abstractmethod
  def default_plan(self, key: jax.Array, step: jax.Array, batch_size: int, num_mix: int) -> LearnedMixPlan:
    """The method's own plan of one iteration, drawn from `key`."""

  @abc.abstractmethod
  def make_generator(self, in_channels: int, scale_factor: int) -> nn.Module:
    """The generator for feature maps of `in_channels`, upsampled by `scale_factor` to the image size."""

  @abc.abstractmethod
  def init_generator(self, generator: nn.Module, key: jax.Array, features: jax.Array) -> dict:
    """The generator's variables from sample features [N, B, h, w, C]."""

  @abc.abstractmethod
  def generator_masks(
    self, generator: nn.Module, variables: dict, features: jax.Array, lams: jax.Array
  ) -> tuple[jax.Array, Any]:
    """(masks [B, H, W, N] for features [N, B, h, w, C] and weights lams [N], updated BN stats or None).

    `variables` holds "batch_stats" only for a generator with BatchNorm; the stats returned are None otherwise.
    """

  def adjust_classifier_masks(self, masks_bb: jax.Array, plan: LearnedMixPlan) -> jax.Array:
    """The classifier's detached masks [B, H, W, N] before the margin rule; unchanged but for SAMix."""
    del plan
    return masks_bb

  def make_networks(self, classifier, image_shape) -> Networks:
    """Adds the generator, sized for the classifier's output at `generator.feature_stage`."""
    sample = jnp.zeros((1, *image_shape))
    output = jax.eval_shape(lambda: classifier.init_with_output(jax.random.key(0), sample, train=False)[0])
    stage = self.options.generator.feature_stage
    if not 0 <= stage < len(output.stages):
      shapes = ", ".join(f"{index}: {tuple(s.shape[1:])}" for index, s in enumerate(output.stages))
      raise ConfigError(
        f"config.generator.feature_stage = {stage}: the backbone has no such feature map. Valid choices "
        f"(index: [h, w, channels] at this image size): {shapes}."
      )
    features = output.stages[stage].shape
    return Networks(classifier, self.make_generator(features[-1], image_shape[0] // features[1]))

  def init_variables(self, nets, rng, images):
    """The classifier and the generator (the EMA teacher starts as a copy: `make_train_state`)."""
    classifier_key, generator_key = jax.random.split(rng)
    variables = nets.classifier.init(classifier_key, images, train=False)
    output = nets.classifier.apply(variables, images, train=False)
    features = output.stages[self.options.generator.feature_stage]
    generator_variables = self.init_generator(
      nets.generator, generator_key, jnp.repeat(features[None], self.num_mix, axis=0)
    )
    stats = variables.get("batch_stats", {})  # {} for a backbone without BatchNorm.
    params = {"classifier": variables["params"], "generator": generator_variables["params"]}
    batch_stats = {"classifier": stats}
    if "batch_stats" in generator_variables:
      batch_stats["generator"] = generator_variables["batch_stats"]
    return params, batch_stats

  def _masks(self, nets, generator_params, generator_stats, features, perms, lams):
    """Generator masks [B, H, W, N] for features[perms] and the generator's updated BN stats (or None)."""
    variables = {"params": generator_params}
    if generator_stats is not None:
      variables["batch_stats"] = generator_stats
    return self.generator_masks(nets.generator, variables, features[perms], lams)

  def generate(self, nets: Networks, params, state, images: jax.Array, plan: LearnedMixPlan, rng=None) -> GeneratedMix:
    """Steps 2-4 of the module docstring for one device's normalised `images` [B, H, W, C]; `rng` gives the
    teacher's two passes their drop-path keys."""
    teacher_params = jax.lax.stop_gradient(state.ema["params"])
    clean, after_clean = train_pass(nets.classifier, teacher_params, state.ema["batch_stats"], images, rng=rng)
    clean = jax.lax.stop_gradient(clean)
    features = clean.stages[self.options.generator.feature_stage]
    generator_stats = state.batch_stats.get("generator")
    masks_mb, generator_stats = self._masks(
      nets, params["generator"], generator_stats, features, plan.mb_perms, plan.mb_lams
    )
    masks_bb, generator_stats = self._masks(
      nets, params["generator"], generator_stats, features, plan.bb_perms, plan.bb_lams
    )
    masks_bb = self.adjust_classifier_masks(jax.lax.stop_gradient(masks_bb), plan)
    vanilla = falls_back_to_vanilla(plan.bb_lams[0], self.lam_margin, plan.bb_perms.shape[0])
    masks_bb = jnp.where(vanilla, jnp.broadcast_to(plan.bb_lams, masks_bb.shape), masks_bb)
    mixed, after_mixed = train_pass(
      nets.classifier, teacher_params, after_clean, mix(images, plan.mb_perms, masks_mb), rng=rng, index=1
    )
    return GeneratedMix(
      clean_teacher=clean,
      teacher_stats_after_clean=after_clean,
      masks_mb=masks_mb,
      mixed_teacher=mixed,
      teacher_stats=after_mixed,
      mixed_bb=mix(images, plan.bb_perms, masks_bb),
      generator_stats=generator_stats,
    )

  def preview(self, nets, state, images, labels, rng):
    """The generator's mixing of `images` under a plan drawn from `rng`, with the state's networks."""
    plan = self.sample_plan(rng, state.step, labels.shape[0], self.num_mix)
    teacher = train_pass(nets.classifier, state.ema["params"], state.ema["batch_stats"], images, rng=rng)[0]
    features = teacher.stages[self.options.generator.feature_stage]
    masks, _ = self._masks(
      nets, state.params["generator"], state.batch_stats.get("generator"), features, plan.mb_perms, plan.mb_lams
    )
    return mix_sources(images, labels, plan.mb_perms, plan.mb_lams, masks)

  def loss(self, nets, params, state, batch, rng):
    plan = self.sample_plan(rng, state.step, batch["labels"].shape[0], self.num_mix)
    return self.loss_with_plan(nets, params, state, batch, plan, rng)

  @abc.abstractmethod
  def loss_with_plan(self, nets: Networks, params, state, batch, plan: LearnedMixPlan, rng=None):
    """The total loss of one shard under `plan`; the return value is `Method.loss`'s. `rng` (the step's key)
    gives each network pass its drop-path key; None: no drop path (the CNNs)."""
