"""What a training method is: how it builds its networks' variables and its loss on one device's shard.

Methods share one skeleton (the state, the step, evaluation, checkpoints, logging); they differ only in
how they build the (mixed) batch and which loss terms they add. A method's `loss` sees one device's
shard and is differentiated with respect to every parameter group at once (one backward pass).
"""

import abc
import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax

from adamix_jax import losses
from adamix_jax.models import Classifier, ClassifierOutput
from adamix_jax.options import Options, option, within


@dataclasses.dataclass(frozen=True)
class SupervisedOptions(Options):
  """What every supervised method reads: the label smoothing of its cross-entropies."""

  label_smoothing: float = option("loss.label_smoothing", within(0, 1, high_open=True))


@dataclasses.dataclass(frozen=True)
class Networks:
  """The Flax modules of a run: the classifier (also the EMA network's architecture), a generator, and a
  fixed network the method only reads (AttentiveMix+'s pretrained backbone; its variables are the
  batch_stats group "frozen", never updated)."""

  classifier: Classifier
  generator: nn.Module | None = None
  frozen: nn.Module | None = None


class Method(abc.ABC):
  """Base class. Subclasses set `name`, `head_names`, their `Options` and implement `loss`.

    method = AdAutoMix(AdAutoMix.Options.defaults(num_mix=2))   # from options alone, or
    method = METHODS[config.method].from_config(config, total_steps)

  Attributes:
    name: the `config.method` that selects it.
    head_names: the classifier heads the method trains (and evaluation reports).
    reported: the `"<online|ema>/<head>"` whose median top-1 is the paper's number for this method.
    has_teacher: the loss runs an EMA teacher (which then always exists and keeps its own BatchNorm
      statistics); methods without one keep an EMA network only with `config.ema.track`.
    semi_supervised: the method learns from a labeled subset and an unlabeled stream (weak and strong views).
    accepts_dm: the method's mixup loss can be Decoupled Mixup (`config.loss.dm.eta > 0`).
    backbones: the backbones (`config.model.name`) the method can run on (None: any).
    Options: the options class of the method: every config value its loss reads.
    options: this method's options.
    total_steps: the run's training iterations (0 where not known).
  """

  name: ClassVar[str]
  head_names: ClassVar[tuple[str, ...]] = ("one",)
  reported: ClassVar[str] = "online/one"  # The head reported by default (config.eval.report = "auto").
  has_teacher: ClassVar[bool] = False
  semi_supervised: ClassVar[bool] = False
  accepts_dm: ClassVar[bool] = False
  backbones: ClassVar[tuple[str, ...] | None] = None
  Options: ClassVar[type[Options]] = SupervisedOptions

  def __init__(self, options: Options, total_steps: int = 0):
    """`total_steps`: the run's training iterations, for schedules a loss keeps (0: not known, e.g. previews)."""
    if not isinstance(options, self.Options):
      raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, not {type(options).__name__}.")
    self.options = options
    self.total_steps = total_steps

  @classmethod
  def from_config(cls, config, total_steps: int = 0) -> "Method":
    """The method with its options read from `config` (checked: ConfigError names a bad key)."""
    return cls(cls.Options.from_config(config), total_steps)

  def make_networks(self, classifier: Classifier, image_shape: tuple[int, int, int]) -> Networks:
    """The modules of the method around `classifier` for images of `image_shape` (H, W, C)."""
    del image_shape
    return Networks(classifier)

  def init_variables(self, nets: Networks, rng: jax.Array, images: jax.Array) -> tuple[dict, dict]:
    """Initial (params, batch_stats), each {group: tree}, from a sample batch `images` [B, H, W, C]."""
    variables = nets.classifier.init(rng, images, train=False)
    return {"classifier": variables["params"]}, {"classifier": variables.get("batch_stats", {})}

  def load_variables(self, abstract_stats: dict) -> dict:
    """batch_stats groups {group: tree} read from files (outside jit), replacing the initial ones when a run
    starts; `abstract_stats` gives their structure and shapes. Nothing ({}) here; AttentiveMix+ reads its network."""
    del abstract_stats
    return {}

  def preview(self, nets: Networks, state: Any, images: jax.Array, labels: jax.Array, rng: jax.Array):
    """The method's mixed samples of normalised `images` [B, H, W, C], for pictures (TensorBoard, notebooks).

    Returns:
      A mixing.MixResult whose masks [B, H, W, K] give each source's per-pixel weight (K = 1: the
      unshuffled image's, for the static mixups; K = N for the learned ones), or None if the method does
      not mix images.
    """
    del nets, state, images, labels, rng
    return None

  def cross_entropy(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """losses.cross_entropy of logits [B, C] and int labels [B], with the method's label smoothing."""
    return losses.cross_entropy(logits, labels, label_smoothing=self.options.label_smoothing)

  def mixup_cross_entropy(self, logits: jax.Array, labels: jax.Array, lams: jax.Array) -> jax.Array:
    """losses.mixup_cross_entropy (labels int [N, B], lams [N] or [N, B]) with the method's label smoothing."""
    return losses.mixup_cross_entropy(logits, labels, lams, label_smoothing=self.options.label_smoothing)

  @abc.abstractmethod
  def loss(
    self, nets: Networks, params: dict, state: Any, batch: dict[str, jax.Array], rng: jax.Array
  ) -> tuple[jax.Array, tuple[dict, dict[str, jax.Array]]]:
    """The total loss of one device's shard.

    Args:
      nets: the modules.
      params: {group: tree}, the variables being differentiated.
      state: the TrainState before the step (step, batch_stats and the EMA teacher are read from it).
      batch: {"images": normalised float32 [b, H, W, C], "labels": int32 [b]}.
      rng: this device's key for this step.

    Returns:
      (loss, (new batch_stats {group: tree}, metrics {name: scalar})); a method with a teacher adds the
      statistics its teacher's passes left under "teacher" (the step moves them to the EMA network).
    """


DROP_PATH_STREAM = 0xD0  # Folded into a step's key for the drop-path keys, leaving its other draws as they were.


def drop_path_rngs(rng: jax.Array | None, index: int = 0) -> dict[str, jax.Array]:
  """The `rngs` of a train-mode pass: a "drop_path" key for the pass numbered `index` of the step whose
  key is `rng` (stochastic depth in the transformer backbones; the CNNs ignore it); {} for None."""
  if rng is None:
    return {}
  return {"drop_path": jax.random.fold_in(jax.random.fold_in(rng, DROP_PATH_STREAM), index)}


def train_pass(
  classifier: Classifier, params, batch_stats, images: jax.Array, *, rng=None, index: int = 0, **kwargs
) -> tuple[ClassifierOutput, Any]:
  """One train-mode pass (batch statistics, running statistics updated): (ClassifierOutput, new batch_stats).

  `rng` and `index` give the pass its drop-path key (`drop_path_rngs`); `kwargs` go to the classifier
  (`stage_hook`, `detach_heads`).
  """
  output, updates = classifier.apply(
    {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"],
    rngs=drop_path_rngs(rng, index), **kwargs,
  )  # fmt: skip
  return output, updates.get("batch_stats", {})  # {} for a backbone without BatchNorm.
