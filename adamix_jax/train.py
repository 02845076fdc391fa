"""`train_and_evaluate(config, workdir)`: builds a run from its config, resumes it, trains and evaluates.

The loop never waits for the device inside an epoch: the metrics of step t are read after step t+1 has
been dispatched. Evaluation runs every `config.eval.every_epochs` epochs on the online network and on the
EMA network (when the run has one); checkpoints follow each evaluation (and every
`config.checkpoint.every_steps` steps). SIGTERM and SIGINT stop the run at the next step with a
checkpoint (a second SIGINT stops at once: `stopping`); rerunning the same command resumes it.
"""

import contextlib
import json
import math
import os
import signal
import statistics
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from etils import epath

from adamix_jax import data, methods, pictures, resuming, steps, stopping, validation
from adamix_jax import workdir as workdir_lib
from adamix_jax.checkpointing import CheckpointError, Checkpoints, disk_full, leaf_shapes
from adamix_jax.data import input_pipeline, labeled_subset, sources
from adamix_jax.experiment import Experiment, examples_per_step, make_experiment
from adamix_jax.reporting import MetricWriter, Progress
from adamix_jax.sharding import host_value, make_mesh, shard_batch
from adamix_jax.train_state import TrainState
from adamix_jax.workdir import WorkdirError


class NonFiniteLossError(FloatingPointError):
  """The training loss (or the state) became NaN or infinite. No checkpoint of a non-finite state is written."""


class Interrupted(Exception):  # Not named ...Error: the run stopped on request.
  """SIGTERM or SIGINT stopped the run; its state was saved and rerunning the command resumes it."""

  def __init__(self, signum: int, step: int, directory: str):
    self.signum = signum
    super().__init__(f"Stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved in {directory}.")


def evaluate(eval_step, state: TrainState, pipeline: data.InputPipeline, mesh) -> dict[str, float]:
  """Top-1 and top-5 accuracy (%) of every head of the online (and EMA) network on the evaluation split."""
  totals = None
  for batch in pipeline.eval_batches():
    counts = eval_step(state, shard_batch(mesh, batch))
    totals = counts if totals is None else jax.tree.map(lambda a, b: a + b, totals, counts)
  totals = host_value(totals)
  count = float(totals.pop("count"))
  return {key: 100.0 * float(value) / count for key, value in totals.items()}


def reported_head(config: ml_collections.ConfigDict) -> str:
  """The "<online|ema>/<head>" whose median top-1 is the run's reported number."""
  return methods.reported_head(config.method, config.eval.report)


def reported_number(history: list[dict[str, Any]], config: ml_collections.ConfigDict) -> float:
  """The paper's number: median top-1 of the reported head over the last `eval.median_of_last` evaluations."""
  head = reported_head(config)
  values = [entry["metrics"][f"{head}/top1"] for entry in history[-config.eval.median_of_last :]]
  return float(statistics.median(values))


class TrainingLoop:
  """The parts of a run's loop that stay fixed while it trains; every method is told the state and step.

  `run` reads as one iteration does: dispatch step t + 1, then read step t's metrics (the loop never
  waits for the device inside an epoch), draw pictures, save on request or at an interval; at the end of
  an epoch, evaluate and save.
  """

  def __init__(
    self,
    config,
    experiment: Experiment,
    info: data.DataInfo,
    mesh,
    workdir: str,
    checkpoints,
    start_step: int,
    labeled_indices=None,
    lock: workdir_lib.WorkdirLock | None = None,
  ):
    self.config, self.mesh, self.checkpoints, self.lock = config, mesh, checkpoints, lock
    self.steps_per_epoch = experiment.steps_per_epoch
    self.total_steps = self.steps_per_epoch * config.num_epochs
    self.is_main = jax.process_index() == 0
    method, nets = experiment.method, experiment.nets
    self.train_step = steps.make_train_step(
      method, nets, experiment.tx, experiment.parts.ema, info, mesh, self.total_steps
    )
    self.eval_step = steps.make_eval_step(method, nets, info, mesh)
    self.all_finite = jax.jit(lambda s: jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(s)])))
    self.writer = MetricWriter(workdir, enabled=self.is_main, start_step=start_step)
    self.progress = Progress(
      self.total_steps, self.steps_per_epoch, config.batch_size, enabled=self.is_main and config.log.progress
    )
    processes = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    if labeled_indices is None:
      self.pipeline = data.InputPipeline(config, info, **processes)
    else:
      self.pipeline = data.SubsetPipeline(
        config, info, labeled_indices, self.steps_per_epoch, unlabeled=method.semi_supervised, **processes
      )
    self.info = info
    self.previewer = None  # Process 0 draws the method's mixing of fixed test images every K steps.
    if self.is_main and config.log.images_every_steps:
      self.previewer = pictures.make_previewer(method, nets, info, config.seed)
      self.preview_examples = self.pipeline.first_eval_examples(config.log.image_count)

  def run(self, state: TrainState, history: list[dict[str, Any]]) -> TrainState:
    """Trains from the state's step to the last epoch; appends each evaluation to `history`.

    Raises:
      NonFiniteLossError, Interrupted: see `train_and_evaluate`.
    """
    config, steps_per_epoch = self.config, self.steps_per_epoch
    start = step = int(host_value(state.step))
    with stopping.requests() as stop:
      for epoch in range(start // steps_per_epoch, config.num_epochs):
        self.progress.start_epoch(epoch)
        pending = None  # (step, device metrics) of the last step dispatched, read after the next dispatch.
        first_batch = start % steps_per_epoch if epoch == start // steps_per_epoch else 0
        for batch in self.pipeline.train_batches(epoch, start_batch=first_batch):
          state, metrics = self.train_step(state, shard_batch(self.mesh, batch))
          step += 1
          if pending is not None:
            self.record(*pending)
          pending = (step, metrics)
          if self.previewer and step % config.log.images_every_steps == 0:
            self.draw(state, step)
          at_interval = config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0
          if stop or (at_interval and step % steps_per_epoch):
            self.record(*pending)
            pending = None
            self.save(state, step, history)
            if stop:
              self.checkpoints.wait()
              raise Interrupted(stop[0], step, self.checkpoints.directory)
        if pending is not None:
          self.record(*pending)
        if (epoch + 1) % config.eval.every_epochs == 0 or epoch + 1 == config.num_epochs:
          self.evaluate(state, step, history)
        else:
          self.save(state, step, history)
      self.checkpoints.wait()
    return state

  def record(self, step: int, device_metrics: dict[str, jax.Array]) -> None:
    """Reads step `step`'s training metrics: progress line, metrics.jsonl and TensorBoard; stops on NaN/inf."""
    metrics = {key: float(value) for key, value in host_value(device_metrics).items()}
    if not math.isfinite(metrics["loss"]):
      self.stop_non_finite(step, f"training loss is {metrics['loss']}")
    self.progress.update(step, metrics)
    if step % self.config.log.every_steps == 0:
      self.check_workdir_held()
      self.writer.write(step, "train", metrics)

  def draw(self, state: TrainState, step: int) -> None:
    """The method's mixing of the fixed test images with the state's networks, to TensorBoard."""
    rendered = pictures.render(self.previewer, state, *self.preview_examples, self.info)
    if rendered is not None:
      self.writer.write_image(step, "mixing/samples_and_masks", rendered[0])

  def evaluate(self, state: TrainState, step: int, history: list[dict[str, Any]]) -> None:
    """Evaluates every head, appends to `history`, prints the epoch's line, saves (ranked by the reported head)."""
    config = self.config
    results = evaluate(self.eval_step, state, self.pipeline, self.mesh)
    history.append({"epoch": step // self.steps_per_epoch, "step": step, "metrics": results})
    reported = reported_number(history, config)
    head = reported_head(config)
    self.writer.write(step, "eval", {**results, "reported_top1": reported})
    if self.is_main:
      summary = " | ".join(f"{key} {value:.2f}" for key, value in results.items() if key.endswith("top1"))
      print(f"epoch {step // self.steps_per_epoch}: {summary} | reported ({head}, median) {reported:.2f}", flush=True)
    self.save(state, step, history, reported_top1=results[f"{head}/top1"])

  def save(self, state: TrainState, step: int, history: list[dict[str, Any]], reported_top1=None) -> None:
    """Starts an asynchronous checkpoint of `state` with the config, input position and history."""
    if not bool(host_value(self.all_finite(state))):
      self.stop_non_finite(step, "parameters or BatchNorm statistics became non-finite")
    self.check_workdir_held()
    position = {
      "step": step,
      "epoch": step // self.steps_per_epoch,
      "batch_in_epoch": step % self.steps_per_epoch,
      "steps_per_epoch": self.steps_per_epoch,
    }
    meta = {"config": json.loads(self.config.to_json()), "input_position": position, "eval_history": history}
    self.checkpoints.save(state, meta, reported_top1=reported_top1)

  def check_workdir_held(self) -> None:
    """Stops, once the saves already started are on disk, if another trainer took the workdir's lock.

    Raises:
      WorkdirLost: nothing more is written to the workdir by this trainer.
    """
    if self.lock is None:
      return
    try:
      self.lock.check_held()
    except workdir_lib.WorkdirLost as lost:
      self.checkpoints.wait()
      raise workdir_lib.WorkdirLost(
        f"{lost}. This trainer stopped without writing more; the last checkpoint it completed is step "
        f"{self.checkpoints.latest_step()}."
      ) from None

  def stop_non_finite(self, step: int, what: str) -> None:
    """Raises NonFiniteLossError once the saves already started are on disk."""
    self.checkpoints.wait()
    latest = self.checkpoints.latest_step()
    if latest is None:
      before = "No checkpoint was written before it: rerunning starts the run over."
    else:
      before = (
        f"The last checkpoint written before it is step {latest} in {self.checkpoints.directory}; it is finite, "
        "but the run may already have been diverging then (see its loss in metrics.jsonl)."
      )
    raise NonFiniteLossError(
      f"The {what} at step {step} (epoch {(step - 1) // self.steps_per_epoch + 1}). Training stopped. {before} "
      "Lower config.optimizer.lr or check the input data before rerunning."
    )

  def close(self) -> None:
    self.writer.close()
    self.pipeline.close()


def _resume_conflicts(
  checkpoints: Checkpoints, step: int, saved_config: dict[str, Any] | None, experiment: Experiment, config
) -> str | None:
  """Why the checkpoint at `step` cannot be resumed by `config`'s run, or None: its arrays differ from the
  new state's (names and shapes, from the checkpoint's metadata), or its method or dataset does."""
  changes = {} if saved_config is None else resuming.differences(saved_config, config)
  identity = [resuming.describe({key: changes[key]}) for key in resuming.RUN_IDENTITY if key in changes]
  try:
    stored = checkpoints.stored_shapes(step) or None  # {}: its metadata is missing.
  except Exception:  # Unreadable metadata: restore_newest_intact names the damaged checkpoint.
    stored = None
  expected = leaf_shapes(experiment.abstract_state)
  differing = []
  if stored is not None:
    differing = sorted(name for name in set(stored) | set(expected) if stored.get(name) != expected.get(name))
  if not identity and not differing:
    return None
  reasons = identity.copy()
  if differing:
    shown = [f"{name} {stored.get(name, 'absent')} saved, {expected.get(name, 'absent')} now" for name in differing[:3]]
    more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
    others = {key: change for key, change in changes.items() if key not in resuming.RUN_IDENTITY}
    reasons.append(f"its state differs: {'; '.join(shown)}{more}")
    if others:
      reasons.append(f"the config differs in {resuming.describe(others)}")
  return "; ".join(reasons)


def _start_or_resume(
  experiment: Experiment, checkpoints: Checkpoints, config: ml_collections.ConfigDict, workdir: str
) -> tuple[TrainState, list[dict[str, Any]], dict[str, Any] | None]:
  """The newest intact checkpoint's state, evaluation history and meta, or a fresh state, [] and None.

  Raises:
    WorkdirError: the workdir holds a run this config cannot resume (another method or dataset, or a state
      of other arrays or shapes).
    CheckpointError: it holds checkpoints, none of which can be read.
  """
  latest = checkpoints.latest_step()
  if latest is None:
    return experiment.init(), [], None
  try:
    saved = checkpoints.read_meta(latest)["config"]
  except Exception:  # Unreadable meta: restore_newest_intact names the damaged checkpoint below.
    saved = None
  if conflict := _resume_conflicts(checkpoints, latest, saved, experiment, config):
    raise WorkdirError(
      f"{workdir} holds a run that this config cannot resume ({conflict}). Use another --workdir, or the saved "
      "run's settings."
    )
  state, meta = checkpoints.restore_newest_intact(experiment.abstract_state)
  if jax.process_index() == 0:
    print(f"Resuming from step {int(host_value(state.step))} in {checkpoints.directory}.", flush=True)
  return state, meta["eval_history"], meta


def _data_info_kept_with_the_run(config: ml_collections.ConfigDict, workdir: str) -> data.DataInfo:
  """The run's DataInfo. Normalisation statistics computed from the training images (a dataset without
  its own, and none in the config) are computed once: they are written into the config, which every
  checkpoint saves, and a resumed run takes them from its newest checkpoint."""
  computed = not config.data.mean and not data.DATASETS[config.data.name].mean
  if computed:
    checkpoints = Checkpoints(workdir, read_only=True)
    try:
      latest = checkpoints.latest_step()
      saved = None if latest is None else checkpoints.read_meta(latest)["config"].get("data", {})
    except Exception:  # An unreadable checkpoint: the statistics are computed again (the same numbers).
      saved = None
    finally:
      checkpoints.close()
    if saved and saved.get("mean"):
      config.data.mean, config.data.std = tuple(saved["mean"]), tuple(saved["std"])
  info = data.data_info(config)
  if computed and not config.data.mean:
    if jax.process_index() == 0:
      print(f"Normalisation computed from the training images: mean {info.mean}, std {info.std}.", flush=True)
    config.data.mean, config.data.std = info.mean, info.std
  return info


def _warn_of_examples_left_out(parts: validation.RunParts, info: data.DataInfo, steps_per_epoch: int) -> None:
  """A warning when the last partial batch drops more than a tenth of the training split from every epoch."""
  left_out = info.num_train - steps_per_epoch * examples_per_step(parts)
  if left_out > info.num_train / 10:
    print(
      f"warning: an epoch is {steps_per_epoch} full step{'s' * (steps_per_epoch > 1)} of {examples_per_step(parts)} "
      f"examples, so {left_out} of the "
      f"{info.num_train} training examples ({100 * left_out / info.num_train:.0f}%) are left out of every epoch "
      f"(other ones each epoch). A batch size that divides {info.num_train} more evenly keeps them.",
      flush=True,
    )


def _labeled_subset(config: ml_collections.ConfigDict, info: data.DataInfo, workdir: str):
  """The run's labeled indices (labeled_subset.resolve), saved into the workdir by process 0 on first use."""
  labels = sources.train_labels(config)
  slices = input_pipeline.input_slices(config, jax.process_count())
  indices = labeled_subset.resolve(config, labels, info.num_classes, workdir, slices)
  if jax.process_index() == 0:
    labeled_subset.save(workdir, indices, labels, config.semisup.labeled_indices or f"balanced, seed {config.seed}")
  return indices


def _summary(config: ml_collections.ConfigDict, history: list[dict[str, Any]], steps: int) -> dict[str, Any]:
  return {
    "reported_top1": reported_number(history, config) if history else None,
    "reported_head": reported_head(config),
    "median_of_last": config.eval.median_of_last,
    "steps": steps,
    "process_index": jax.process_index(),
    "last_eval": history[-1] if history else None,
  }


@contextlib.contextmanager
def _disk_full_stops_the_run(checkpoints: Checkpoints):
  """Turns a full disk met anywhere (a save, metrics.jsonl, TensorBoard, closing) into one CheckpointError
  that names the last complete checkpoint."""
  try:
    yield
  except CheckpointError:
    raise
  except Exception as error:
    if disk_full(error):
      raise checkpoints.disk_full_error() from error
    raise


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its newest intact checkpoint if there is one.

  The workdir is checked and locked before anything is built: one trainer per workdir.

  Returns:
    The run summary (also written to WORKDIR/summary.json): the reported number and the last evaluation.
    A finished run, rerun, returns its summary and trains nothing.

  Raises:
    ConfigError: the config cannot work (raised before anything is compiled).
    WorkdirError: the workdir cannot be written, another trainer holds it, or it holds another run.
    adamix_jax.data.splits.DataNotPreparedError: the dataset is missing and cannot be downloaded now.
    adamix_jax.data.labeled_subset.LabeledSubsetError: the labeled subset cannot be built (too many labels,
      a bad index file).
    CheckpointError: no checkpoint can be read, or the disk is full.
    NonFiniteLossError: the loss became NaN/inf; the checkpoints written before are intact.
    Interrupted: SIGTERM/SIGINT; the state was saved first.
  """
  mesh = make_mesh(config.num_devices)
  parts = validation.validate(config, mesh.size, jax.process_count())
  is_main = jax.process_index() == 0
  with contextlib.ExitStack() as stack:
    stack.enter_context(workdir_lib.removed_if_left_empty(workdir, enabled=is_main))
    workdir_lib.prepare(workdir)
    lock = stack.enter_context(workdir_lib.WorkdirLock(workdir, enabled=is_main))
    stack.enter_context(stopping.before_exit_at_once(lock.release))
    checkpoint_folder = os.path.join(workdir, workdir_lib.CHECKPOINTS)
    stack.enter_context(stopping.before_exit_at_once(lambda: stopping.last_checkpoint_note(checkpoint_folder)))
    info = _data_info_kept_with_the_run(config, workdir)
    labeled_indices = _labeled_subset(config, info, workdir) if parts.semisup.labeled_subset else None
    experiment = make_experiment(config, info, mesh)
    if is_main:
      _warn_of_examples_left_out(parts, info, experiment.steps_per_epoch)
    checkpoints = Checkpoints(workdir, keep=config.checkpoint.keep, asynchronous=config.checkpoint.asynchronous)
    with checkpoints, _disk_full_stops_the_run(checkpoints):
      state, history, meta = _start_or_resume(experiment, checkpoints, config, workdir)
      steps = int(host_value(state.step))
      if history and steps >= experiment.steps_per_epoch * config.num_epochs:
        if is_main:
          print(f"The run in {workdir} is finished ({steps} steps); nothing to train.", flush=True)
        return _summary(config, history, steps)
      if meta is not None:
        changes = resuming.check_changes(meta, config, experiment.steps_per_epoch, steps, workdir)
        resuming.record(workdir, steps, changes)
      loop = TrainingLoop(config, experiment, info, mesh, workdir, checkpoints, steps, labeled_indices, lock)
      try:
        state = loop.run(state, history)
      finally:
        loop.close()
      summary = _summary(config, history, int(host_value(state.step)))
      if is_main:
        (epath.Path(workdir) / "summary.json").write_text(json.dumps(summary, indent=1))
  return summary
