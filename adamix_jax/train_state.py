"""The functional train state, the optimiser over parameter groups, and the EMA teacher's update.

Every tree the step changes lives in `TrainState`; optimisers and apply functions stay outside, so the
state is a plain pytree that orbax saves as it is. What depends on the iteration is computed from `step`.
"""

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from adamix_jax import schedules
from adamix_jax.config import ConfigError
from adamix_jax.options import Options, non_negative, one_of, option, positive, unit_interval, within


@flax.struct.dataclass
class TrainState:
  """Everything one training step reads and writes.

  Attributes:
    step: int32 scalar, iterations done.
    params: {"classifier": backbone + heads, "generator": mask generator (methods that have one)}.
    batch_stats: {"classifier": ..., "generator": ... (a generator with BatchNorm)}, the running BatchNorm
      statistics of the online networks; and "frozen": the variables of a fixed network the method reads
      (AttentiveMix+), which no step changes.
    ema: the EMA network, {"params", "batch_stats"} (flax variables of the classifier), or None: the teacher
      of AdAutoMix, AutoMix and the semi-supervised methods (its statistics come from its own passes); for
      the other methods only with `config.ema.track` (its statistics an EMA of the classifier's).
    opt_state: the optax state of the partitioned optimiser.
    rng: uint32 [2] raw key data; the step folds in the step and device index.
  """

  step: jax.Array
  params: dict[str, Any]
  batch_stats: dict[str, Any]
  ema: dict[str, Any] | None
  opt_state: optax.OptState
  rng: jax.Array

  def variables(self, network: str = "online") -> dict[str, Any]:
    """The flax variables {"params", "batch_stats"} of the "online" classifier or of the "ema" network."""
    if network == "online":
      return {"params": self.params["classifier"], "batch_stats": self.batch_stats["classifier"]}
    if network == "ema" and self.ema is not None:
      return self.ema
    raise ValueError(f"network {network!r} is not one of this state's: {', '.join(self.networks)}.")

  @property
  def networks(self) -> tuple[str, ...]:
    """The networks `variables` can give: ("online",) or ("online", "ema")."""
    return ("online",) if self.ema is None else ("online", "ema")


# Leaves the transformer recipes keep out of the weight decay besides norms and biases (timm's
# `no_weight_decay`, mmcls's `custom_keys`).
NO_DECAY_NAMES = ("cls_token", "pos_embed", "relative_position_bias_table")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("cosine_per_epoch", "cosine_per_step")


@dataclasses.dataclass(frozen=True)
class OptimizerOptions(Options):
  """`config.optimizer` and the run's length: the optimiser of each parameter group and its schedule."""

  name: str = option("optimizer.name", one_of(OPTIMIZERS))  # SGD (coupled L2) or AdamW (decoupled decay).
  lr: float = option("optimizer.lr", positive)
  min_lr: float = option("optimizer.min_lr", non_negative)  # Floor of the cosine.
  momentum: float = option("optimizer.momentum", non_negative)
  nesterov: bool = option("optimizer.nesterov")
  weight_decay: float = option("optimizer.weight_decay", non_negative)
  decay_norm_and_bias: bool = option("optimizer.decay_norm_and_bias")  # False: `decays` picks the leaves.
  betas: tuple[float, float] = option("optimizer.betas")  # AdamW.
  eps: float = option("optimizer.eps", non_negative)  # AdamW.
  schedule: str = option("optimizer.schedule", one_of(LR_SCHEDULES))
  warmup_epochs: float = option("optimizer.warmup_epochs", non_negative)  # cosine_per_step: linear warm-up.
  warmup_ratio: float = option("optimizer.warmup_ratio", within(0, 1, low_open=True))  # Its first lr / lr.
  grad_clip: float = option("optimizer.grad_clip", non_negative)  # > 0: global-norm clipping of all groups.
  generator_lr: float = option("optimizer.generator.lr", non_negative)  # 0: the classifier's lr and min_lr.
  generator_min_lr: float = option("optimizer.generator.min_lr", non_negative)
  num_epochs: int = option("num_epochs", positive)

  def check(self):
    if self.warmup_epochs and self.schedule != "cosine_per_step":
      raise ConfigError(
        f"{self.key('warmup_epochs')} needs {self.key('schedule')} = 'cosine_per_step' (the warm-up is per step, "
        "as mmcv's)."
      )
    if self.warmup_epochs > self.num_epochs:
      raise ConfigError(
        f"{self.key('warmup_epochs')} = {self.warmup_epochs} exceeds {self.key('num_epochs')} = {self.num_epochs}."
      )
    for lr, min_lr in (("lr", "min_lr"), ("generator_lr", "generator_min_lr")):
      if getattr(self, min_lr) > getattr(self, lr) and (lr == "lr" or getattr(self, lr) > 0):
        raise ConfigError(f"{self.key(min_lr)} = {getattr(self, min_lr)} exceeds {self.key(lr)} = {getattr(self, lr)}.")


@dataclasses.dataclass(frozen=True)
class EMAOptions(Options):
  """`config.ema`: the EMA network's momentum schedule (`schedules.ema_rate`), and whether methods without
  a teacher keep one."""

  section = "ema"
  momentum: float = option("momentum", unit_interval)  # Held for the first adjust_start of training.
  end_momentum: float = option("end_momentum", unit_interval)  # Reached by cosine at the last step.
  adjust_start: float = option("adjust_start", unit_interval)
  track: bool = option("track")  # ERM and the static mixups: keep (and evaluate) an EMA network too.

  def kept(self, has_teacher: bool) -> bool:
    """Whether a run holds an EMA network: its method's teacher, or one asked for by `track`."""
    return has_teacher or self.track

  def rate(self, step: jax.Array, total_steps: int) -> jax.Array:
    """The update rate 1 - momentum at `step` of a run of `total_steps`."""
    return schedules.ema_rate(step, total_steps, self.momentum, self.end_momentum, self.adjust_start)


def decays(params: Any) -> Any:
  """True for the leaves weight decay applies to when norms and biases are excluded: not the
  one-dimensional leaves (norm scales and offsets, biases, ConvNeXt's layer scale `gamma`; timm's rule)
  nor the class token, position embeddings and Swin's relative-position tables (NO_DECAY_NAMES)."""
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf: jnp.ndim(leaf) > 1 and path[-1].key not in NO_DECAY_NAMES, params
  )


def sgd(
  schedule, *, momentum: float, nesterov: bool, weight_decay: float, decay_norm_and_bias: bool = True
) -> optax.GradientTransformation:
  """PyTorch's SGD: coupled L2 (added to the gradient), momentum buffer started at the first gradient.

  `decay_norm_and_bias=False` leaves norm parameters and biases out of the weight decay (`decays`).
  """
  return optax.chain(
    optax.add_decayed_weights(weight_decay, mask=None if decay_norm_and_bias else decays),
    optax.sgd(schedule, momentum=momentum or None, nesterov=nesterov),
  )


def adamw(schedule, *, betas, eps: float, weight_decay: float, decay_norm_and_bias: bool = True):
  """PyTorch's AdamW: decoupled decay lr * weight_decay * param, bias-corrected moments.

  `decay_norm_and_bias=False` leaves the leaves of `decays` out of the decay.
  """
  return optax.adamw(
    schedule, b1=betas[0], b2=betas[1], eps=eps, weight_decay=weight_decay,
    mask=None if decay_norm_and_bias else decays,
  )  # fmt: skip


def make_optimizer(
  options: OptimizerOptions, params: dict[str, Any], steps_per_epoch: int
) -> optax.GradientTransformation:
  """One optimiser, partitioned by the top-level parameter group (`classifier`, `generator`).

  Each group gets its own `options.name` (SGD or AdamW) with its own cosine learning rate (per epoch, or
  per step with a linear warm-up of `warmup_epochs`) over `options.num_epochs`. The generator's lr and
  floor are `generator_lr`, `generator_min_lr` when its lr is set (> 0), the classifier's otherwise; the
  other options are the classifier's (as OpenMixup's `paramwise_options`). `grad_clip` > 0 first clips
  the gradient of all groups together to that global norm (mmcv's `grad_clip`).
  """
  total_steps = steps_per_epoch * options.num_epochs
  transforms = {}
  for group in params:
    lr, min_lr = options.lr, options.min_lr
    if group == "generator" and options.generator_lr > 0:
      lr, min_lr = options.generator_lr, options.generator_min_lr
    if options.schedule == "cosine_per_step":
      warmup = round(options.warmup_epochs * steps_per_epoch)
      schedule = schedules.cosine_per_step(lr, min_lr, total_steps, warmup, options.warmup_ratio)
    else:
      schedule = schedules.cosine_per_epoch(lr, min_lr, steps_per_epoch, options.num_epochs)
    if options.name == "adamw":
      transforms[group] = adamw(
        schedule, betas=options.betas, eps=options.eps, weight_decay=options.weight_decay,
        decay_norm_and_bias=options.decay_norm_and_bias,
      )  # fmt: skip
    else:
      transforms[group] = sgd(
        schedule, momentum=options.momentum, nesterov=options.nesterov, weight_decay=options.weight_decay,
        decay_norm_and_bias=options.decay_norm_and_bias,
      )  # fmt: skip
  labels = {group: jax.tree.map(lambda _, g=group: g, tree) for group, tree in params.items()}
  tx = optax.partition(transforms, labels)
  return optax.chain(optax.clip_by_global_norm(options.grad_clip), tx) if options.grad_clip > 0 else tx


def ema_update(average: Any, online: Any, rate: jax.Array) -> Any:
  """average <- (1 - rate) * average + rate * online, leaf by leaf; rate = 1 - momentum."""
  return jax.tree.map(lambda t, o: (1 - rate) * t + rate * o, average, online)


def next_ema(ema: dict[str, Any], online: dict[str, Any], rate: jax.Array, teacher_stats: Any = None) -> dict[str, Any]:
  """The EMA network after a step, the one rule for every method.

  Args:
    ema: its variables {"params", "batch_stats"} before the step.
    online: the classifier's variables after the step.
    rate: 1 - momentum (`EMAOptions.rate`).
    teacher_stats: the statistics the EMA network's own passes left (a teacher's), taken as they are; None:
      its statistics move towards the classifier's like its parameters.
  """
  stats = teacher_stats
  if stats is None:
    stats = ema_update(ema["batch_stats"], online["batch_stats"], rate)
  return {"params": ema_update(ema["params"], online["params"], rate), "batch_stats": stats}


def make_train_state(
  params: dict[str, Any],
  batch_stats: dict[str, Any],
  tx: optax.GradientTransformation,
  rng: jax.Array,
  *,
  ema: bool = True,
) -> TrainState:
  """A fresh state at step 0.

  Args:
    params, batch_stats: {group: tree}, as `Method.init_variables` returns them.
    tx: the optimiser (its state is initialised here).
    rng: the run's key; the step folds in the step and device index.
    ema: keep an EMA network; it starts as a copy of the classifier (parameters and statistics).
  """
  copy = jax.tree.map(jnp.copy, {"params": params["classifier"], "batch_stats": batch_stats["classifier"]})
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=batch_stats,
    ema=copy if ema else None,
    opt_state=tx.init(params),
    rng=jax.random.key_data(rng),
  )
