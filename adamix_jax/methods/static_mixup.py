"""Static mixups (MixUp, CutMix, FMix, ResizeMix, SaliencyMix, GridMix, SmoothMix, ManifoldMix, the DeiT
recipe, TransMix), each with or without DM.

Each step draws a plan on every device (`mixing.sample_plan`), mixes the device's shard, and trains
`head_one` with the mixup cross-entropy, or with the Decoupled Mixup loss when `options.dm.eta > 0`
(docs/method.md#decoupled-mixup). ManifoldMix mixes the hidden features at a stage drawn from
`mixup.manifoldmix_stages` instead of the images. The DeiT recipe mixes each batch with CutMix or
MixUp, drawn per batch; TransMix does the same and re-weights CutMix's lambda by the attention the class
token pays to the pasted patches.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from adamix_jax import losses, mixing
from adamix_jax.methods.base import Method, SupervisedOptions, drop_path_rngs
from adamix_jax.options import Options, one_of, option, ordered_range, positive, unit_interval


def _stages(stages) -> str | None:
  return None if stages and set(stages) <= {0, 1, 2} else "must be a non-empty subset of (0, 1, 2)"


def _ordered_pair(low_bound: float, open_low: bool = False):
  """A (low, high) range with low_bound <= low <= high (low_bound < low when open_low)."""
  sign = "<" if open_low else "<="

  def check(pair) -> str | None:
    above = len(pair) == 2 and (pair[0] > low_bound if open_low else pair[0] >= low_bound)
    return None if above and pair[0] <= pair[1] else f"must be a (low, high) pair with {low_bound} {sign} low <= high"

  return check


@dataclasses.dataclass(frozen=True)
class MixupOptions(Options):
  """`config.mixup`: the static mixups' draws and their operators' settings."""

  section = "mixup"
  alpha: float = option("alpha", positive)  # lambda ~ Beta(alpha, alpha).
  cutmix_alpha: float = option("cutmix_alpha", positive)  # deit, transmix: the CutMix branch's alpha.
  cutmix_prob: float = option("cutmix_prob", unit_interval)  # deit, transmix: chance of the CutMix branch.
  transmix_ratio: float = option("transmix_ratio", unit_interval)  # transmix: weight of the area lambda.
  resizemix_scope: tuple[float, float] = option("resizemix_scope", ordered_range())
  fmix_decay_power: float = option("fmix_decay_power", positive)
  manifoldmix_stages: tuple[int, ...] = option("manifoldmix_stages", _stages)
  gridmix_n_holes: tuple[int, int] = option("gridmix_n_holes", _ordered_pair(1))
  gridmix_hole_aspect_ratio: tuple[float, float] = option("gridmix_hole_aspect_ratio", _ordered_pair(0, open_low=True))
  gridmix_cut_area_ratio: tuple[float, float] = option("gridmix_cut_area_ratio", ordered_range())
  gridmix_cut_aspect_ratio: tuple[float, float] = option("gridmix_cut_aspect_ratio", _ordered_pair(0, open_low=True))
  smoothmix_lam: str = option("smoothmix_lam", one_of(mixing.SMOOTHMIX_LAMS))


@dataclasses.dataclass(frozen=True)
class StaticMixupOptions(SupervisedOptions):
  """A static mixup's options: its draws, and the Decoupled Mixup loss (on when dm.eta > 0)."""

  mixup: MixupOptions = option("mixup")
  dm: losses.DecoupledMixupOptions = option("loss.dm")


class StaticMixup(Method):
  """Base of the static mixups; subclasses name the mixing operator."""

  head_names = ("one",)
  accepts_dm = True
  mixes_images = True  # False: it mixes hidden features (`preview` gives None).
  reads_network_file = False  # True: it needs a network of its own (a file), so it cannot mix any run's images.
  Options = StaticMixupOptions

  def operator(self):
    """The mixing function (images, labels, plan) -> MixResult, with its config options bound."""
    return mixing.OPERATORS[self.name]

  def mixed_loss(self, logits: jax.Array, labels: jax.Array, lams: jax.Array) -> jax.Array:
    """Mixup cross-entropy, or DM if options.dm.eta > 0, for labels and lams [2, B]."""
    if self.options.dm.eta > 0:
      return self.options.dm.loss(logits, labels, lams, label_smoothing=self.options.label_smoothing)
    return self.mixup_cross_entropy(logits, labels, lams)

  def mix(self, images: jax.Array, labels: jax.Array, key: jax.Array) -> mixing.MixResult:
    """The mixed batch of images [B, H, W, C] and labels [B], drawn from `key`."""
    plan = mixing.sample_plan(key, labels.shape[0], self.options.mixup.alpha)
    return self.operator()(images, labels, plan)

  def preview(self, nets, state, images, labels, rng):
    return self.mix(images, labels, jax.random.split(rng)[0])

  def forward(self, nets, variables, batch, mix_key, rng):
    """(logits of head_one [B, C], labels [2, B], lams [2, B], updated batch_stats) of the batch mixed from
    `mix_key`; `rng` gives the pass its drop-path key."""
    return self.classify(nets, variables, self.mix(batch["images"], batch["labels"], mix_key), rng)

  def classify(self, nets, variables, mixed: mixing.MixResult, rng):
    """The classifier's train-mode pass on a mixed batch: as `forward` returns it."""
    output, updates = nets.classifier.apply(
      variables, mixed.images, train=True, mutable=["batch_stats"], rngs=drop_path_rngs(rng)
    )
    return output.logits["one"], mixed.labels, mixed.lams, updates.get("batch_stats", {})

  def loss(self, nets, params, state, batch, rng):
    mix_key, other_key = jax.random.split(rng)
    variables = {"params": params["classifier"], "batch_stats": state.batch_stats["classifier"]}
    logits, labels, lams, batch_stats = self.forward(nets, variables, batch, mix_key, other_key)
    loss = self.mixed_loss(logits, labels, lams)
    return loss, ({"classifier": batch_stats}, {"loss": loss, "accuracy": mixed_accuracy(logits, labels, lams)})


def mixed_accuracy(logits: jax.Array, labels: jax.Array, lams: jax.Array) -> jax.Array:
  """The training accuracy on a mixed batch: each source's weight where the prediction is its label
  (logits [B, C], labels int and lams [K, B])."""
  return jnp.mean(jnp.sum(lams * (jnp.argmax(logits, -1)[None] == labels), 0))


class MixUp(StaticMixup):
  name = "mixup"


class CutMix(StaticMixup):
  name = "cutmix"


class SaliencyMix(StaticMixup):
  name = "saliencymix"


class FMix(StaticMixup):
  name = "fmix"

  def operator(self):
    return functools.partial(mixing.fmix, decay_power=self.options.mixup.fmix_decay_power)


class ResizeMix(StaticMixup):
  name = "resizemix"

  def operator(self):
    return functools.partial(mixing.resizemix, scope=tuple(self.options.mixup.resizemix_scope))


class GridMix(StaticMixup):
  name = "gridmix"

  def operator(self):
    options = self.options.mixup
    return functools.partial(
      mixing.gridmix,
      n_holes=tuple(options.gridmix_n_holes),
      hole_aspect_ratio=tuple(options.gridmix_hole_aspect_ratio),
      cut_area_ratio=tuple(options.gridmix_cut_area_ratio),
      cut_aspect_ratio=tuple(options.gridmix_cut_aspect_ratio),
    )


class SmoothMix(StaticMixup):
  name = "smoothmix"

  def operator(self):
    return functools.partial(mixing.smoothmix, lam_of=self.options.mixup.smoothmix_lam)


class ManifoldMix(StaticMixup):
  """MixUp of the hidden features entering a random stage (0: after the stem, 1, 2: after stages 1, 2)."""

  name = "manifoldmix"
  mixes_images = False

  def preview(self, nets, state, images, labels, rng):
    return None  # It mixes hidden features: nothing to look at.

  def forward(self, nets, variables, batch, mix_key, rng):
    plan = mixing.sample_plan(mix_key, batch["labels"].shape[0], self.options.mixup.alpha)
    hook = manifold_hook(plan, batch["labels"], self.options.mixup.manifoldmix_stages, rng)
    output, updates = nets.classifier.apply(
      variables, batch["images"], train=True, stage_hook=hook, mutable=["batch_stats"], rngs=drop_path_rngs(rng)
    )
    labels, lams = plan_labels(batch["labels"], plan)
    return output.logits["one"], labels, lams, updates.get("batch_stats", {})


def manifold_hook(plan: mixing.MixPlan, labels: jax.Array, stages: tuple[int, ...], key: jax.Array, active=True):
  """ManifoldMix's `stage_hook`: MixUp by `plan` of the features entering one stage drawn from `stages` with
  `key` (labels [B] as mixing.mixup takes them); `active` (a traced bool) switches it off for the pass."""
  stages = jnp.asarray(stages)
  stage = stages[jax.random.randint(key, (), 0, len(stages))]

  def hook(k, features):
    return jnp.where(active & (stage == k), mixing.mixup(features, labels, plan).images, features)

  return hook


def plan_labels(labels: jax.Array, plan: mixing.MixPlan) -> tuple[jax.Array, jax.Array]:
  """The label pairs [2, B] and weights [2, B] of a batch mixed whole by `plan` (one lambda)."""
  lam = jnp.full(labels.shape, plan.lam)
  return jnp.stack([labels, labels[plan.permutation]]), jnp.stack([lam, 1 - lam])


class DeiTMixup(StaticMixup):
  """The DeiT recipe: each batch is mixed by CutMix (alpha `mixup.cutmix_alpha`) with probability
  `mixup.cutmix_prob`, else by MixUp (alpha `mixup.alpha`) — OpenMixup's `mix_mode=['cutmix', 'mixup']`."""

  name = "deit"

  def branches(self, images, labels, key) -> tuple[jax.Array, mixing.MixResult]:
    """(whether CutMix was drawn, the mixed batch)."""
    options = self.options.mixup
    choice_key, cut_key, mix_key = jax.random.split(key, 3)
    use_cutmix = jax.random.bernoulli(choice_key, options.cutmix_prob)
    cut_plan = mixing.sample_plan(cut_key, labels.shape[0], options.cutmix_alpha)
    mix_plan = mixing.sample_plan(mix_key, labels.shape[0], options.alpha)
    mixed = jax.lax.cond(
      use_cutmix, lambda: mixing.cutmix(images, labels, cut_plan), lambda: mixing.mixup(images, labels, mix_plan)
    )
    return use_cutmix, mixed

  def mix(self, images, labels, key):
    return self.branches(images, labels, key)[1]


class TransMix(DeiTMixup):
  """TransMix (Chen et al., CVPR 2022, as OpenMixup runs it): the DeiT recipe whose CutMix lambda becomes
  ratio * area + (1 - ratio) * attention, where `attention` is the share of the class token's attention
  (last block, averaged over heads, without gradient) on the image's own patches rather than the pasted
  ones, and ratio = `mixup.transmix_ratio`. Needs a backbone with a class token (deit_s)."""

  name = "transmix"
  backbones = ("deit_s",)

  def forward(self, nets, variables, batch, mix_key, rng):
    use_cutmix, mixed = self.branches(batch["images"], batch["labels"], mix_key)
    output, updates = nets.classifier.apply(
      variables, mixed.images, train=True, mutable=["batch_stats", "intermediates"], rngs=drop_path_rngs(rng)
    )
    attention = jax.lax.stop_gradient(updates["intermediates"]["backbone"]["cls_attention"][0])  # [B, h, w]
    lam = transmix_lambda(mixed.masks[..., 0], mixed.lams[0], attention, self.options.mixup.transmix_ratio)
    lams = jnp.where(use_cutmix, jnp.stack([lam, 1 - lam]), mixed.lams)
    return output.logits["one"], mixed.labels, lams, updates.get("batch_stats", {})


def transmix_lambda(own: jax.Array, area_lam: jax.Array, attention: jax.Array, ratio: float) -> jax.Array:
  """TransMix's lambda of the unshuffled image [B].

  Args:
    own: [B, H, W], 1 where a pixel is the unshuffled image's own, 0 where pasted.
    area_lam: [B], its area share.
    attention: [B, h, w], the class token's attention on each patch (H, W multiples of h, w); a patch
      counts as pasted or own by its top-left pixel (PyTorch's nearest downsampling).
    ratio: weight of the area share.
  """
  step_h, step_w = own.shape[1] // attention.shape[1], own.shape[2] // attention.shape[2]
  patch_own = own[:, ::step_h, ::step_w].astype(jnp.float32)
  attention = attention.astype(jnp.float32)
  on_own = jnp.sum(patch_own * attention, axis=(1, 2))
  on_pasted = jnp.sum((1 - patch_own) * attention, axis=(1, 2))
  return ratio * area_lam + (1 - ratio) * on_own / (on_own + on_pasted)
