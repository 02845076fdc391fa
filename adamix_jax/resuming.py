"""What a resumed run may change: its config is compared with the one its newest checkpoint saved.

- Its identity (the method, the dataset) and the arrays of its state never change: that is another run, for
  another --workdir (`conflicts`).
- Where and how it runs, and what it evaluates (`config.free_on_resume`: devices, data_dir, logging,
  checkpointing, eval.*), change freely; a notice lists what changed.
- Every other key changes what the steps still to come compute (the batch, the epochs, the learning rates,
  the method's settings), and so does a training split of another size (its steps per epoch). Such a change
  is refused with one line that names it, unless `config.resume.accept_changes` lists it
  ("batch_size,optimizer.lr"; `steps_per_epoch` for a training split that grew or shrank). An accepted
  change applies from the saved step on, as if the new config had been the run's from the start: the
  schedule and the epoch of every later step are the new config's; the steps trained before keep what they
  did. So extending a finished run (`num_epochs=400`, accepted) continues it as the longer run would be at
  that step: its learning rate rises to where the longer schedule has it. Accepted changes are recorded
  in WORKDIR/config_changes.jsonl, a JSON line each with its step, and `compare` lists them.
"""

import datetime
import json
import os
from typing import Any

import jax
from etils import epath

from adamix_jax import config as config_lib
from adamix_jax.config import ConfigError

# What a run is, beyond the shapes of its state: a workdir holding another method's or another dataset's run
# is never resumed (a MixUp and a CutMix run, say, have states of the same shapes).
RUN_IDENTITY = ("method", "data.name")
STEPS_PER_EPOCH = "steps_per_epoch"  # Not a config key: the training split's size over the batch.
CHANGES_FILE = "config_changes.jsonl"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat |= _flatten(value, f"{prefix}{key}.")
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def differences(saved: dict[str, Any], config) -> dict[str, tuple[Any, Any]]:
  """{key: (saved value, value now)} of every key of `config` whose value differs from the saved config's.
  A key the saved config lacks (added since) ran with its default; keys removed since are ignored."""
  now = _flatten(json.loads(config.to_json()))
  before = _flatten(json.loads(config_lib.base_config().to_json())) | _flatten(saved)
  return {key: (before.get(key), value) for key, value in sorted(now.items()) if before.get(key) != value}


def describe(changes: dict[str, tuple[Any, Any]]) -> str:
  """ "batch_size: 100 -> 50; optimizer.lr: 0.1 -> 0.05" """
  return "; ".join(f"{key}: {before!r} -> {after!r}" for key, (before, after) in changes.items())


def accepted(config) -> tuple[str, ...]:
  """The keys of `config.resume.accept_changes`."""
  return tuple(name.strip() for name in config.resume.accept_changes.split(",") if name.strip())


def known_changes(value: str) -> str | None:
  """An options check of `resume.accept_changes`: every name is a config key or steps_per_epoch."""
  keys = set(_flatten(config_lib.base_config().to_dict())) | {STEPS_PER_EPOCH}
  unknown = [name.strip() for name in value.split(",") if name.strip() and name.strip() not in keys]
  return None if not unknown else f"names {', '.join(unknown)}, not config keys (or {STEPS_PER_EPOCH})"


def check_changes(
  meta: dict[str, Any], config, steps_per_epoch: int, step: int, workdir: str
) -> dict[str, tuple[Any, Any]]:
  """The changes of a resumed run that it accepts, printed; free changes are only printed.

  Args:
    meta: the restored checkpoint's meta (its config and input position).
    steps_per_epoch: the new run's.
    step: the restored step.

  Returns:
    The accepted changes that alter what is trained (to record with `record`).

  Raises:
    ConfigError: a change that alters what is trained and is not accepted.
  """
  changes = differences(meta["config"], config)
  saved_steps = meta.get("input_position", {}).get(STEPS_PER_EPOCH, steps_per_epoch)
  if saved_steps != steps_per_epoch:
    changes[STEPS_PER_EPOCH] = (saved_steps, steps_per_epoch)
  free = {key: change for key, change in changes.items() if config_lib.free_on_resume(key)}
  meaningful = {key: change for key, change in changes.items() if key not in free}
  refused = {key: change for key, change in meaningful.items() if key not in accepted(config)}
  if refused:
    epoch = f", at epoch {step // steps_per_epoch + 1} [{step % steps_per_epoch}/{steps_per_epoch}]"
    raise ConfigError(
      f"{workdir} holds a run saved at step {step} that trained with other settings: {describe(refused)}. "
      f"Resuming would continue it under the new ones from step {step}{epoch if saved_steps != steps_per_epoch else ''}"
      f" with the new config's schedule. Rerun with the saved settings, or change them on purpose: "
      f"--config.resume.accept_changes={','.join(refused)}."
    )
  if jax.process_index() == 0:
    if free:
      print(f"The config differs from the checkpoint's in how the run runs or is evaluated: {describe(free)}.")
    if meaningful:
      print(
        f"Changed on purpose from step {step} on (config.resume.accept_changes; recorded in "
        f"{os.path.join(workdir, CHANGES_FILE)}): {describe(meaningful)}.",
        flush=True,
      )
  return meaningful


def record(workdir: str, step: int, changes: dict[str, tuple[Any, Any]]) -> None:
  """Appends the accepted changes at `step` to WORKDIR/config_changes.jsonl (process 0; once per step and
  change, however often the run is resumed from that step)."""
  if not changes or jax.process_index() != 0:
    return
  entry = {"step": step, "changes": {key: list(change) for key, change in changes.items()}}
  before = read(workdir)
  if any(old["step"] == step and old["changes"] == entry["changes"] for old in before):
    return
  entry["time"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  lines = [json.dumps(old) for old in before] + [json.dumps(entry)]
  (epath.Path(workdir) / CHANGES_FILE).write_text("\n".join(lines) + "\n")  # Local or gs://.


def read(workdir: str) -> list[dict[str, Any]]:
  """The recorded changes of a workdir: [{"step", "changes": {key: [before, after]}, "time"}], oldest first."""
  path = epath.Path(workdir) / CHANGES_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
