"""What a config builds before anything runs: the method, its networks, the optimiser and the train state.

Training (`train.py`), pictures (`visualize.py`), the benchmark and notebooks all start here:

    experiment = make_experiment(config, info, mesh)
    state = experiment.init()                                      # a fresh run, or
    state, meta = checkpoints.restore(experiment.abstract_state)   # a saved one (nothing initialised)
"""

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from adamix_jax import config as config_lib
from adamix_jax import data, methods, models, sharding
from adamix_jax.models import pretrained as pretrained_lib
from adamix_jax.train_state import TrainState, make_optimizer, make_train_state


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The pieces of a run that do not change while it trains.

  Attributes:
    method: the training method (how a batch is mixed, which loss terms).
    nets: its Flax modules (classifier, generator).
    tx: the optimiser over the parameter groups.
    steps_per_epoch: training steps in one epoch.
    abstract_state: the TrainState's shapes, dtypes and (replicated) shardings, computed without running
      anything: the target of a checkpoint restore.
    init: () -> a fresh TrainState on the mesh (compiles and runs the initialisation; loads pretrained
      weights when `config.model.pretrained` is set).
  """

  method: methods.Method
  nets: methods.Networks
  tx: optax.GradientTransformation
  steps_per_epoch: int
  abstract_state: TrainState
  init: Callable[[], TrainState]


def steps_per_epoch(config: ml_collections.ConfigDict, info: data.DataInfo) -> int:
  """Steps in one epoch: full batches in one pass over the training split (the last partial one dropped).

  A labeled-subset run counts its epoch as one pass over the unlabeled pool (the whole split) at
  batch_size * semisup.unlabeled_ratio images a step, whatever the method, so a supervised-only baseline
  with the same num_epochs trains as many steps as FixMatch.
  """
  per_step = config.batch_size
  if config_lib.uses_labeled_subset(config):
    per_step *= config.semisup.unlabeled_ratio
  steps = info.num_train // per_step
  if steps == 0:
    raise config_lib.ConfigError(
      f"{per_step} training examples a step (config.batch_size = {config.batch_size}"
      f"{', times config.semisup.unlabeled_ratio' if per_step != config.batch_size else ''}) exceed the "
      f"{info.num_train} training examples: an epoch would have no step."
    )
  return steps


def make_experiment(config: ml_collections.ConfigDict, info: data.DataInfo, mesh: Mesh) -> Experiment:
  """Builds the run of `config` on `mesh` for data described by `info`."""
  spe = steps_per_epoch(config, info)
  method = methods.METHODS[config.method](config, total_steps=spe * config.num_epochs)
  classifier = models.make_classifier(
    config.model.name,
    info.num_classes,
    method.head_names,
    width=config.model.width,
    init=config.model.init,
    axis_name=sharding.AXIS if config.model.sync_batch_norm else None,
    dtype=config.model.dtype,
    window=config.model.window,
    drop_path=config.model.drop_path,
  )
  nets = method.make_networks(classifier, info.image_shape)
  init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
  sample = np.zeros((1, *info.image_shape), np.float32)
  abstract_params, abstract_stats = jax.eval_shape(lambda: method.init_variables(nets, init_rng, sample))
  tx = make_optimizer(config, abstract_params, spe)
  ema = method.keeps_ema(config)

  def fresh_state(pretrained) -> TrainState:
    params, batch_stats = method.init_variables(nets, init_rng, sample)
    if pretrained is not None:
      params, batch_stats = pretrained_lib.replace_backbone(params, batch_stats, *pretrained)
    return make_train_state(params, batch_stats, tx, step_rng, ema=ema)

  replicated = sharding.replicated(mesh)
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), jax.eval_shape(fresh_state, None)
  )

  def init() -> TrainState:
    pretrained = None
    if config.model.pretrained:
      pretrained = pretrained_lib.load_torchvision(
        config.model.pretrained, abstract_params["classifier"]["backbone"], abstract_stats["classifier"]["backbone"]
      )
    return jax.jit(lambda: fresh_state(pretrained), out_shardings=replicated)()

  return Experiment(method, nets, tx, spe, abstract_state, init)
