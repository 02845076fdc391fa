"""Orbax checkpoints of a run: the whole TrainState plus a JSON record of the config and input position.

Layout: `WORKDIR/checkpoints/<step>/{state,meta}`. The latest `config.checkpoint.keep` checkpoints are
kept, plus the one with the best reported accuracy. Saves are asynchronous (training continues while
the files are written); a checkpoint becomes visible only once complete, so a run killed mid-save
resumes from the previous one. Restoring places the arrays on whatever mesh the new run has; a damaged
checkpoint is skipped with a warning and moved aside to `<step>.damaged-<time>` (`restore_newest_intact`),
never deleted. Readers open the directory
with `read_only=True`: they never write, clean or delete anything, and can run beside the trainer.
"""

import contextlib
import errno
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers as policies

from adamix_jax.sharding import host_value
from adamix_jax.train_state import TrainState
from adamix_jax.workdir import CHECKPOINTS

BEST_METRIC = "reported_top1"
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # How orbax names a save until it is complete.


class CheckpointError(RuntimeError):
  """No checkpoint of the workdir can be restored, or one cannot be written. The message says what to do."""


# How a full disk reads where no OSError(ENOSPC) is left to find: orbax's tensorstore writes report it as a
# ValueError "RESOURCE_EXHAUSTED ... os_error_code='28'".
DISK_FULL_TEXTS = ("No space left on device", "os_error_code='28'", "[Errno 28]")


def disk_full(error: BaseException) -> bool:
  """Whether `error`, or an exception it was raised from or groups, is 'no space left on device'."""
  seen = set()
  stack = [error]
  while stack:
    current = stack.pop()
    if current is None or id(current) in seen:
      continue
    seen.add(id(current))
    if isinstance(current, OSError) and current.errno == errno.ENOSPC:
      return True
    if any(text in str(current) for text in DISK_FULL_TEXTS):
      return True
    stack.extend([current.__cause__, current.__context__, *getattr(current, "exceptions", ())])
  return False


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"a/b/c": shape} of every leaf with a shape in `tree` (a TrainState, its abstract form, or the dict tree
  of a checkpoint's metadata: the same names either way)."""

  def name(entry) -> str:
    for attribute in ("name", "key", "idx"):
      if hasattr(entry, attribute):
        return str(getattr(entry, attribute))
    return str(entry)

  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(map(name, path)): tuple(leaf.shape) for path, leaf in leaves if hasattr(leaf, "shape")}


class Checkpoints:
  """Saves and restores the checkpoints of one workdir."""

  def __init__(self, workdir: str, *, keep: int = 3, asynchronous: bool = True, read_only: bool = False):
    """Opens WORKDIR/checkpoints (created on the first save).

    Args:
      workdir: the run's directory (local or a gs:// path).
      keep: latest checkpoints kept, in addition to the best one (`config.checkpoint.keep`).
      asynchronous: write saves in the background (`config.checkpoint.asynchronous`).
      read_only: open for reading only (pictures, evaluation, notebooks): nothing is written, cleaned or
        deleted, not even the unfinished save of a trainer that runs beside the reader.
    """
    self.read_only = read_only
    self._disk_full = False  # Set once a save met a full disk.
    local = "://" not in workdir  # gs:// and other remote paths are used as they are.
    self.directory = os.path.join(os.path.abspath(workdir) if local else workdir, CHECKPOINTS)
    preservation = policies.AnyPreservationPolicy(
      [
        policies.LatestN(n=keep),
        policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1, keep_checkpoints_without_metrics=False),
      ]
    )
    options = ocp.CheckpointManagerOptions(
      enable_async_checkpointing=asynchronous,
      preservation_policy=preservation,
      cleanup_tmp_directories=not read_only,  # The writer (one per workdir) removes its own unfinished saves.
      read_only=read_only,
    )
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

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
    try:
      self.manager.save(step, args=args, metrics=metrics, force=True)
    except Exception as error:
      self._raise_if_disk_full(error)
      raise

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

  def restore_newest_intact(self, abstract_state: TrainState) -> tuple[TrainState, dict[str, Any]]:
    """Restores the newest checkpoint that can be read, skipping damaged ones with a one-line warning each.

    Raises:
      CheckpointError: there are checkpoints, but none can be read (nothing is deleted).
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
      try:
        restored = self.restore(abstract_state, step)
      except Exception as error:  # Any failure to read a checkpoint means it cannot be resumed from.
        damaged.append((step, _first_line(error)))
        continue
      for bad_step, reason in damaged:  # Only once an intact one is found: a rerun must never start over.
        where = self._set_aside(bad_step)
        if jax.process_index() == 0:
          print(f"warning: checkpoint step {bad_step} in {self.directory} is damaged ({reason}); skipping it "
                f"({where}).", flush=True)  # fmt: skip
      return restored
    raise CheckpointError(
      f"None of the checkpoints in {self.directory} (steps {', '.join(map(str, steps))}) can be read (step "
      f"{damaged[0][0]}: {damaged[0][1]}). Move that directory away to start the run over, or give another --workdir."
    )

  def _set_aside(self, step: int) -> str:
    """Moves a damaged checkpoint out of the way of the run that writes this step again (the writer only).

    Returns:
      Where it is now, for the warning. Nothing is deleted; readers leave it where it is.
    """
    if self.read_only or jax.process_index() != 0:
      return "left in place"
    source = os.path.join(self.directory, str(step))
    target = f"{source}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    epath.Path(source).rename(target)
    self.manager.reload()
    return f"moved to {target}"

  def stored_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """{"params/classifier/...": shape} of every array the checkpoint at `step` holds (from its metadata only)."""
    return leaf_shapes(self.manager.item_metadata(step)["state"])

  def restore_tree(self, step: int) -> dict[str, Any]:
    """The state saved at `step` as nested dicts of arrays, without a target: to read part of another run
    (AttentiveMix+ reads a run's backbone) whose TrainState need not be built."""
    return self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON meta (config, input position, evaluation history) of the checkpoint at `step`."""
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

  def wait(self) -> None:
    """Blocks until every started save is on disk.

    Raises:
      CheckpointError: a save failed because the disk is full.
    """
    try:
      self.manager.wait_until_finished()
    except Exception as error:
      self._raise_if_disk_full(error)
      raise

  def _raise_if_disk_full(self, error: BaseException) -> None:
    if disk_full(error):
      raise self.disk_full_error() from error

  def disk_full_error(self) -> CheckpointError:
    """The one-line error of a run stopped by a full disk. Frees what the unfinished saves took (the writer)."""
    self._disk_full = True  # Freed again once the manager is closed: its writers may still be at work now.
    self._free_unfinished()
    try:
      latest = self.latest_step()
    except Exception:  # The manager could not even list its steps on this disk.
      latest = None
    last = "no checkpoint was completed" if latest is None else f"the last complete checkpoint is step {latest}"
    return CheckpointError(
      f"The disk holding {self.directory} is full: a checkpoint could not be written and the run stopped; "
      f"{last}. Free some space and rerun the command to resume."
    )

  def _free_unfinished(self, settle_s: float = 0.0) -> None:
    """Removes the folders of unfinished saves (the writer process only).

    settle_s: keep removing until none has reappeared for this long (at most 10 s): after a failed save,
      tensorstore's own threads may still finish writes of it, recreating its folders.
    """
    if self.read_only or jax.process_index() != 0:
      return
    deadline, quiet_since = time.monotonic() + 10, time.monotonic()
    while True:
      unfinished = list(epath.Path(self.directory).glob(f"*{TMP_SUFFIX}*"))
      for path in unfinished:
        with contextlib.suppress(OSError):
          path.rmtree()
      now = time.monotonic()
      quiet_since = now if unfinished else quiet_since
      if now - quiet_since >= settle_s or now > deadline:
        return
      time.sleep(0.05)

  def close(self) -> None:
    """Finishes the saves under way and closes the manager.

    Raises:
      CheckpointError: a save failed because the disk is full.
    """
    try:
      self.manager.close()
    except Exception as error:
      self._raise_if_disk_full(error)
      raise

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, kind, error, traceback) -> None:
    """Closes; while another error stops the run, that error is the one reported, not a failing close."""
    try:
      if error is None:
        self.close()
      else:
        with contextlib.suppress(Exception):
          self.manager.close()
    finally:
      if self._disk_full:  # Writers of the failed save may still recreate its folders.
        self._free_unfinished(settle_s=1.0)
