"""Orbax checkpoints of a run: the whole TrainState plus a JSON record of the config and input position.

Layout: `WORKDIR/checkpoints/<step>/{state,meta}`. The latest `config.checkpoint.keep` checkpoints are
kept, plus the one with the best reported accuracy. Saves are asynchronous (training continues while
the files are written); a checkpoint becomes visible only once complete, so a run killed mid-save
resumes from the previous one. Restoring places the arrays on whatever mesh the new run has.
"""

import os
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from adamix_jax.sharding import host_value
from adamix_jax.train_state import TrainState

BEST_METRIC = "reported_top1"


class Checkpoints:
  """Saves and restores the checkpoints of one workdir."""

  def __init__(self, workdir: str, *, keep: int = 3, asynchronous: bool = True):
    """Opens WORKDIR/checkpoints (created on the first save).

    Args:
      workdir: the run's directory (local or a gs:// path).
      keep: latest checkpoints kept, in addition to the best one (`config.checkpoint.keep`).
      asynchronous: write saves in the background (`config.checkpoint.asynchronous`).
    """
    local = "://" not in workdir  # gs:// and other remote paths are used as they are.
    self.directory = os.path.join(os.path.abspath(workdir) if local else workdir, "checkpoints")
    preservation = policies.AnyPreservationPolicy(
      [
        policies.LatestN(n=keep),
        policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1, keep_checkpoints_without_metrics=False),
      ]
    )
    options = ocp.CheckpointManagerOptions(
      enable_async_checkpointing=asynchronous,
      preservation_policy=preservation,
      cleanup_tmp_directories=True,
    )
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self.manager.latest_step()

  def save(self, state: TrainState, meta: dict[str, Any], reported_top1: float | None = None) -> None:
    """Starts writing `state` and `meta` (JSON-serialisable) under the state's step.

    Args:
      reported_top1: the run's reported accuracy at this point, which ranks the best checkpoint; None for
        saves between evaluations.
    """
    step = int(host_value(state.step))  # Replicated: every process reads its own copy.
    metrics = None if reported_top1 is None else {BEST_METRIC: reported_top1}
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    self.manager.save(step, args=args, metrics=metrics, force=True)

  def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores the checkpoint at `step` (default: the latest) onto the shardings of `abstract_state`.

    Args:
      abstract_state: a TrainState of jax.ShapeDtypeStruct with shardings (e.g. from jax.eval_shape and
        the new run's mesh).
    """
    step = self.latest_step() if step is None else step
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    restored = self.manager.restore(step, args=args)
    return restored.state, restored.meta

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON meta (config, input position, evaluation history) of the checkpoint at `step`."""
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

  def wait(self) -> None:
    """Blocks until every started save is on disk."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
