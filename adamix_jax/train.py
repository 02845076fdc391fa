"""`train_and_evaluate(config, workdir)`: builds a run from its config, resumes it, trains and evaluates.

The loop never waits for the device inside an epoch: the metrics of step t are read after step t+1 has
been dispatched. Evaluation runs every `config.eval.every_epochs` epochs on the online network and on the
EMA teacher; checkpoints follow each evaluation (and every `config.checkpoint.every_steps` steps). SIGTERM
and SIGINT stop the run at the next step with a checkpoint; rerunning the same command resumes it.
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
import numpy as np
import tensorflow as tf
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adamix_jax import config as config_lib
from adamix_jax import data, methods, models, step, visualize
from adamix_jax.checkpointing import Checkpoints
from adamix_jax.models import pretrained as pretrained_lib
from adamix_jax.reporting import MetricWriter, Progress
from adamix_jax.train_state import TrainState, build_optimizer, create_train_state


class NonFiniteLossError(FloatingPointError):
  """The training loss (or the state) became NaN or infinite. No checkpoint of a non-finite state is written."""


class Interrupted(Exception):  # noqa: N818  (it is not an error: the run stopped on request)
  """SIGTERM or SIGINT stopped the run; its state was saved and rerunning the command resumes it."""

  def __init__(self, signum: int, step: int, directory: str):
    self.signum = signum
    super().__init__(f"Stopped by {signal.Signals(signum).name} at step {step}; checkpoint saved in {directory}.")


@contextlib.contextmanager
def _stop_requests():
  """Turns SIGTERM/SIGINT into a flag the loop checks between steps (a second SIGINT interrupts at once)."""
  received: list[int] = []

  def handler(signum, frame):
    if received and signum == signal.SIGINT:
      raise KeyboardInterrupt
    received.append(signum)

  previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


def build(
  config: ml_collections.ConfigDict, info: data.DataInfo, mesh
) -> tuple[methods.Method, methods.Networks, Any, TrainState]:
  """The method, its networks, the optimiser and a fresh state replicated over `mesh`."""
  method = methods.METHODS[config.method](config)
  classifier = models.build_classifier(
    config.model.name,
    info.num_classes,
    method.head_names,
    width=config.model.width,
    init=config.model.init,
    axis_name=step.AXIS if config.model.sync_batch_norm else None,
    dtype=config.model.dtype,
  )
  nets = method.build_networks(classifier, info.image_shape)
  init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
  sample = np.zeros((1, *info.image_shape), np.float32)
  abstract_params, abstract_stats = jax.eval_shape(lambda: method.init_variables(nets, init_rng, sample))
  tx = build_optimizer(config, abstract_params, steps_per_epoch(config, info))
  pretrained = None
  if config.model.pretrained:
    backbone_stats = abstract_stats["classifier"]["backbone"]
    pretrained = pretrained_lib.load_torchvision(
      config.model.pretrained, abstract_params["classifier"]["backbone"], backbone_stats
    )

  def init():
    params, batch_stats = method.init_variables(nets, init_rng, sample)
    if pretrained is not None:
      params, batch_stats = pretrained_lib.replace_backbone(params, batch_stats, *pretrained)
    return create_train_state(params, batch_stats, tx, step_rng)

  state = jax.jit(init, out_shardings=NamedSharding(mesh, P()))()
  return method, nets, tx, state


def steps_per_epoch(config: ml_collections.ConfigDict, info: data.DataInfo) -> int:
  steps = info.num_train // config.batch_size
  if steps == 0:
    raise config_lib.ConfigError(
      f"config.batch_size = {config.batch_size} exceeds the {info.num_train} training examples: "
      "an epoch would have no step."
    )
  return steps


def evaluate(eval_step, state: TrainState, pipeline: data.InputPipeline, mesh) -> dict[str, float]:
  """Top-1 and top-5 accuracy (%) of every head of the online and EMA networks on the evaluation split."""
  totals = None
  for batch in pipeline.eval_batches():
    counts = eval_step(state, step.shard_batch(mesh, batch))
    totals = counts if totals is None else jax.tree.map(lambda a, b: a + b, totals, counts)
  totals = step.host_value(totals)
  count = float(totals.pop("count"))
  return {key: 100.0 * float(value) / count for key, value in totals.items()}


def reported_number(history: list[dict[str, Any]], config: ml_collections.ConfigDict) -> float:
  """The paper's number: median top-1 of the reported head over the last `eval.median_of_last` evaluations."""
  head = config_lib.reported_head(config)
  values = [entry["metrics"][f"{head}/top1"] for entry in history[-config.eval.median_of_last :]]
  return float(statistics.median(values))


def _saved_config_changes(saved: dict[str, Any], config: ml_collections.ConfigDict) -> list[str]:
  now = json.loads(config.to_json())

  def flatten(tree, prefix=""):
    for key, value in tree.items():
      if isinstance(value, dict):
        yield from flatten(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", value

  before, after = dict(flatten(saved)), dict(flatten(now))
  return [
    f"{key}: {before.get(key)!r} -> {after.get(key)!r}"
    for key in sorted(set(before) | set(after))
    if before.get(key) != after.get(key)
  ]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint if there is one.

  Returns:
    The run summary (also written to WORKDIR/summary.json): the reported number and the last evaluation.

  Raises:
    config_lib.ConfigError: the config cannot work (raised before anything is compiled).
    data.DataNotPreparedError: the dataset is missing and cannot be downloaded now.
    NonFiniteLossError: the loss became NaN/inf; the checkpoints written before are intact.
    Interrupted: SIGTERM/SIGINT; the state was saved first.
  """
  mesh = step.make_mesh(config.num_devices)
  config_lib.validate(config, mesh.size, jax.process_count())
  info = data.data_info(config)
  spe = steps_per_epoch(config, info)
  total_steps = spe * config.num_epochs
  is_main = jax.process_index() == 0
  method, nets, tx, state = build(config, info, mesh)

  checkpoints = Checkpoints(workdir, config)
  history: list[dict[str, Any]] = []
  if checkpoints.latest_step() is not None:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    state, meta = checkpoints.restore(abstract)
    history = meta["eval_history"]
    changes = _saved_config_changes(meta["config"], config)
    if is_main:
      print(f"Resuming from step {int(step.host_value(state.step))} in {checkpoints.directory}.", flush=True)
      if changes:
        print("The config differs from the checkpoint's: " + "; ".join(changes), flush=True)

  all_finite = jax.jit(lambda s: jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(s)])))
  train_step = step.make_train_step(method, nets, tx, config, info, mesh, total_steps)
  eval_step = step.make_eval_step(method, nets, info, mesh)
  writer = MetricWriter(workdir, enabled=is_main)
  progress = Progress(total_steps, spe, config.batch_size, enabled=is_main and config.log.progress)
  pipeline = data.InputPipeline(config, info, process_index=jax.process_index(), process_count=jax.process_count())
  pictures = None  # Process 0 draws the method's mixing of fixed test images to TensorBoard every K steps.
  if is_main and config.log.images_every_steps:
    previewer = visualize.make_previewer(method, nets, info, config.seed)
    pictures = (previewer, *pipeline.first_eval_examples(config.log.image_count))

  def draw() -> None:
    rendered = visualize.render(pictures[0], state, *pictures[1:], info)
    if rendered is not None:
      writer.write_image(done, "mixing/samples_and_masks", rendered[0])

  def meta() -> dict[str, Any]:
    position = {"step": done, "epoch": done // spe, "batch_in_epoch": done % spe, "steps_per_epoch": spe}
    return {"config": json.loads(config.to_json()), "input_position": position, "eval_history": history}

  def stop_non_finite(done: int, what: str) -> None:
    checkpoints.wait()
    raise NonFiniteLossError(
      f"The {what} at step {done} (epoch {(done - 1) // spe + 1}). Training stopped; the last good checkpoint is "
      f"step {checkpoints.latest_step()} in {checkpoints.directory}. Lower config.optimizer.lr or check the input "
      "data, then rerun to resume from that checkpoint."
    )

  def save(reported_top1: float | None = None) -> None:
    if not bool(step.host_value(all_finite(state))):
      stop_non_finite(done, "parameters or BatchNorm statistics became non-finite")
    checkpoints.save(state, meta(), reported_top1=reported_top1)

  def read(pending: tuple[int, dict[str, jax.Array]]) -> None:
    done, device_metrics = pending
    metrics = {key: float(value) for key, value in step.host_value(device_metrics).items()}
    if not math.isfinite(metrics["loss"]):
      stop_non_finite(done, f"training loss is {metrics['loss']}")
    progress.update(done, metrics)
    if done % config.log.every_steps == 0:
      writer.write(done, "train", metrics)

  start = done = int(step.host_value(state.step))
  try:
    with _stop_requests() as stop:
      for epoch in range(start // spe, config.num_epochs):
        progress.start_epoch(epoch)
        pending = None
        first_batch = start % spe if epoch == start // spe else 0
        for batch in pipeline.train_batches(epoch, start_batch=first_batch):
          state, metrics = train_step(state, step.shard_batch(mesh, batch))
          done += 1
          if pending is not None:
            read(pending)
          pending = (done, metrics)
          if pictures and done % config.log.images_every_steps == 0:
            draw()
          at_interval = config.checkpoint.every_steps and done % config.checkpoint.every_steps == 0
          if stop or (at_interval and done % spe):
            read(pending)
            pending = None
            save()
            if stop:
              checkpoints.wait()
              raise Interrupted(stop[0], done, checkpoints.directory)
        if pending is not None:
          read(pending)
        if (epoch + 1) % config.eval.every_epochs and epoch + 1 < config.num_epochs:
          save()
          continue
        results = evaluate(eval_step, state, pipeline, mesh)
        history.append({"epoch": epoch + 1, "step": done, "metrics": results})
        reported = reported_number(history, config)
        writer.write(done, "eval", {**results, "reported_top1": reported})
        if is_main:
          summary = " | ".join(f"{key} {value:.2f}" for key, value in results.items() if key.endswith("top1"))
          print(
            f"epoch {epoch + 1}: {summary} | reported ({config_lib.reported_head(config)}, median) {reported:.2f}",
            flush=True,
          )
        save(reported_top1=results[f"{config_lib.reported_head(config)}/top1"])
    checkpoints.wait()
  finally:
    writer.close()
    checkpoints.close()

  summary = {
    "reported_top1": reported_number(history, config) if history else None,
    "reported_head": config_lib.reported_head(config),
    "median_of_last": config.eval.median_of_last,
    "steps": int(step.host_value(state.step)),
    "process_index": jax.process_index(),
    "last_eval": history[-1] if history else None,
  }
  if is_main:
    with tf.io.gfile.GFile(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1)
  return summary
