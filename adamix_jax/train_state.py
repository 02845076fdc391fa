"""The functional train state, the optimiser over parameter groups, and the EMA teacher's update.

Every tree the step changes lives in `TrainState`; optimisers and apply functions stay outside, so the
state is a plain pytree that orbax saves as it is. What depends on the iteration is computed from `step`.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from adamix_jax import schedules


@flax.struct.dataclass
class TrainState:
  """Everything one training step reads and writes.

  Attributes:
    step: int32 scalar, iterations done.
    params: {"classifier": backbone + heads, "generator": mask generator (methods that have one)}.
    ema_params: the EMA network, an exponential moving average of params["classifier"]: the teacher of
      AdAutoMix and AutoMix; for the other methods only with `config.ema.track`, else None.
    batch_stats: {"classifier": ..., "teacher": the EMA network's statistics (updated by the teacher's
      own passes, or, for methods without a teacher, an EMA of the classifier's), "generator": ... (a
      generator with BatchNorm)}.
    opt_state: the optax state of the partitioned optimiser.
    rng: uint32 [2] raw key data; the step folds in the step and device index.
  """

  step: jax.Array
  params: dict[str, Any]
  ema_params: Any
  batch_stats: dict[str, Any]
  opt_state: optax.OptState
  rng: jax.Array


# Leaves the transformer recipes keep out of the weight decay besides norms and biases (timm's
# `no_weight_decay`, mmcls's `custom_keys`).
NO_DECAY_NAMES = ("cls_token", "pos_embed", "relative_position_bias_table")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("cosine_per_epoch", "cosine_per_step")


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
  config: ml_collections.ConfigDict, params: dict[str, Any], steps_per_epoch: int
) -> optax.GradientTransformation:
  """One optimiser, partitioned by the top-level parameter group (`classifier`, `generator`).

  Each group gets its own `config.optimizer.name` (SGD or AdamW) with its own cosine learning rate (per
  epoch, or per step with a linear warm-up of `warmup_epochs`). The generator's lr and floor are
  `config.optimizer.generator.{lr, min_lr}` when its lr is set (> 0), the classifier's otherwise; the
  other options are the classifier's (as OpenMixup's `paramwise_options`). `grad_clip` > 0 first clips
  the gradient of all groups together to that global norm (mmcv's `grad_clip`).
  """
  options = config.optimizer
  total_steps = steps_per_epoch * config.num_epochs
  transforms = {}
  for group in params:
    lr, min_lr = options.lr, options.min_lr
    if group == "generator" and options.generator.lr > 0:
      lr, min_lr = options.generator.lr, options.generator.min_lr
    if options.schedule == "cosine_per_step":
      warmup = round(options.warmup_epochs * steps_per_epoch)
      schedule = schedules.cosine_per_step(lr, min_lr, total_steps, warmup, options.warmup_ratio)
    else:
      schedule = schedules.cosine_per_epoch(lr, min_lr, steps_per_epoch, config.num_epochs)
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


def ema_update(teacher: Any, online: Any, rate: jax.Array) -> Any:
  """teacher <- (1 - rate) * teacher + rate * online, leaf by leaf (parameters only); rate = 1 - momentum."""
  return jax.tree.map(lambda t, o: (1 - rate) * t + rate * o, teacher, online)


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
    ema: keep an EMA network. It starts as a copy of the classifier, and so do its BatchNorm statistics
      unless the method already made them (a teacher's).
  """
  ema_params = None
  if ema:
    ema_params = jax.tree.map(jnp.copy, params["classifier"])
    if "teacher" not in batch_stats:
      batch_stats = {**batch_stats, "teacher": jax.tree.map(jnp.copy, batch_stats["classifier"])}
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=ema_params,
    batch_stats=batch_stats,
    opt_state=tx.init(params),
    rng=jax.random.key_data(rng),
  )
