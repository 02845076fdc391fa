"""What a config builds before anything runs: the method, its networks, the optimiser and the train state.

Training (`train.py`), the tools (`tools/`) and notebooks all start here:

    experiment = make_experiment(config, info, mesh)
    state = experiment.init()                                      # a fresh run, or
    state, meta = checkpoints.restore(experiment.abstract_state)   # a saved one (nothing initialised)
    run = load_run(workdir)                                        # a saved run, to look at
"""

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh

from adamix_jax import config as config_lib
from adamix_jax import data, methods, sharding
from adamix_jax.checkpointing import Checkpoints
from adamix_jax.config import ConfigError
from adamix_jax.models import pretrained as pretrained_lib
from adamix_jax.train_state import TrainState, make_optimizer, make_train_state
from adamix_jax.validation import RunParts


@dataclasses.dataclass(frozen=True)
class Experiment:
  """The pieces of a run that do not change while it trains.

  Attributes:
    parts: every part's options, read from the config once.
    method: the training method (how a batch is mixed, which loss terms).
    nets: its Flax modules (classifier, generator).
    tx: the optimiser over the parameter groups.
    steps_per_epoch: training steps in one epoch.
    abstract_state: the TrainState's shapes, dtypes and (replicated) shardings, computed without running
      anything: the target of a checkpoint restore.
    init: () -> a fresh TrainState on the mesh (compiles and runs the initialisation; loads pretrained
      weights when `config.model.pretrained` is set).
  """

  parts: RunParts
  method: methods.Method
  nets: methods.Networks
  tx: optax.GradientTransformation
  steps_per_epoch: int
  abstract_state: TrainState
  init: Callable[[], TrainState]


def examples_per_step(parts: RunParts) -> int:
  """Training-split examples one step takes: the batch, or a labeled-subset run's unlabeled images."""
  return parts.run.batch_size * (parts.semisup.unlabeled_ratio if parts.semisup.labeled_subset else 1)


def steps_per_epoch(parts: RunParts, info: data.DataInfo) -> int:
  """Steps in one epoch: full batches in one pass over the training split (the last partial one dropped).

  A labeled-subset run counts its epoch as one pass over the unlabeled pool (the whole split) at
  batch_size * semisup.unlabeled_ratio images a step, whatever the method, so a supervised-only baseline
  with the same num_epochs trains as many steps as FixMatch.
  """
  batch_size = parts.run.batch_size
  per_step = examples_per_step(parts)
  steps = info.num_train // per_step
  if steps == 0:
    raise ConfigError(
      f"{per_step} training examples a step (config.batch_size = {batch_size}"
      f"{', times config.semisup.unlabeled_ratio' if per_step != batch_size else ''}) exceed the "
      f"{info.num_train} training examples: an epoch would have no step."
    )
  return steps


def make_experiment(config: ml_collections.ConfigDict, info: data.DataInfo, mesh: Mesh) -> Experiment:
  """Builds the run of `config` on `mesh` for data described by `info` (each part reads its options once)."""
  parts = RunParts.read(config)
  parts.model.check_input(info.image_shape[0])
  spe = steps_per_epoch(parts, info)
  method = parts.method_class(parts.method, total_steps=spe * parts.run.num_epochs)
  classifier = parts.model.classifier(info.num_classes, method.head_names, sharding.AXIS)
  nets = method.make_networks(classifier, info.image_shape)
  init_rng, step_rng = jax.random.split(jax.random.key(parts.run.seed))
  sample = np.zeros((1, *info.image_shape), np.float32)
  abstract_params, abstract_stats = jax.eval_shape(lambda: method.init_variables(nets, init_rng, sample))
  tx = make_optimizer(parts.optimizer, abstract_params, spe)
  ema = parts.ema.kept(method.has_teacher)

  def fresh_state(pretrained, loaded) -> TrainState:
    params, batch_stats = method.init_variables(nets, init_rng, sample)
    if pretrained is not None:
      params, batch_stats = pretrained_lib.replace_backbone(params, batch_stats, *pretrained)
    return make_train_state(params, {**batch_stats, **loaded}, tx, step_rng, ema=ema)

  replicated = sharding.replicated(mesh)
  abstract_state = jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), jax.eval_shape(fresh_state, None, {})
  )

  def init() -> TrainState:
    pretrained = None
    if parts.model.pretrained:
      pretrained = pretrained_lib.load_torchvision(
        parts.model.pretrained, abstract_params["classifier"]["backbone"], abstract_stats["classifier"]["backbone"]
      )
    loaded = method.load_variables(abstract_stats)
    return jax.jit(lambda: fresh_state(pretrained, loaded), out_shardings=replicated)()

  return Experiment(parts, method, nets, tx, spe, abstract_state, init)


@dataclasses.dataclass(frozen=True)
class SavedRun:
  """A saved run, ready to look at (`load_run`).

  Attributes:
    config: the config the checkpoint saved (on today's defaults for keys added since).
    info: its dataset's facts.
    experiment: its method, networks and options.
    state: the restored TrainState, replicated on the mesh it was loaded onto.
  """

  config: ml_collections.ConfigDict
  info: data.DataInfo
  experiment: Experiment
  state: TrainState


def load_run(workdir: str, step: int | None = None, mesh: Mesh | None = None) -> SavedRun:
  """The checkpoint at `step` (default: the latest) of `workdir`, restored onto `mesh` (default: one
  device). Nothing in the workdir is written.

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
  """
  checkpoints = Checkpoints(workdir, read_only=True)  # Never cleans the save of a trainer beside it.
  try:
    saved = checkpoints.latest_step() if step is None else step
    if saved is None:
      raise FileNotFoundError(f"{checkpoints.directory} holds no checkpoint: train first, or check --workdir.")
    config = config_lib.from_saved(checkpoints.read_meta(saved)["config"])
    mesh = mesh or sharding.make_mesh(1)
    config.num_devices = mesh.size
    info = data.data_info(config)
    experiment = make_experiment(config, info, mesh)
    state, _ = checkpoints.restore(experiment.abstract_state, saved)
  finally:
    checkpoints.close()
  return SavedRun(config, info, experiment, state)
