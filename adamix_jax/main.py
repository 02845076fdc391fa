"""Command line: `python -m adamix_jax.main --config configs/cifar100.py --workdir runs/c100`.

Any config value can be overridden (`--config.num_epochs=200`), a config file can take a variant
(`--config configs/cifar100.py:smoke`), and rerunning the same command resumes from the workdir's latest
checkpoint. Run the same command on every host of a pod.
"""

import os
import sys

if __name__ == "__main__":  # Before the heavy imports: a signal during start-up ends the run in one line.
  from adamix_jax import stopping

  stopping.exit_at_once()

from absl import app, flags, logging
from ml_collections import config_flags

from adamix_jax import config as config_lib
from adamix_jax import data, distributed, quiet, train
from adamix_jax.checkpointing import CheckpointError
from adamix_jax.workdir import WorkdirError

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file, optionally with a variant: FILE.py:VARIANT.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard and summary.json."
)
flags.mark_flags_as_required(["config", "workdir"])


# Errors that say what was wrong and what to do in their message: printed as one line, no traceback
# (ADAMIX_JAX_TRACEBACK=1 shows the full trace).
USER_ERRORS = (
  config_lib.ConfigError,
  data.DataNotPreparedError,
  data.LabeledSubsetError,
  train.NonFiniteLossError,
  WorkdirError,
  CheckpointError,
)
TRACEBACK = "ADAMIX_JAX_TRACEBACK"


def _one_line(error: BaseException) -> str:
  """The message of `error` on one line; ml_collections' "did you mean" for an unknown key made readable."""
  text = str(error)
  if isinstance(error, KeyError | AttributeError) and error.args:
    text = str(error.args[0]).replace("\\'", "'").replace("\\n", "\n").strip("'\"")
    key, _, hint = text.partition("\n")
    if hint.startswith("Did you mean"):
      text = f"{key.strip(chr(39))} is not a config key. {hint}"
  if "Traceback (most recent call last)" in text:  # absl embeds the config file's traceback: keep its last line.
    head = text.split(":")[0] if text.startswith("flag --") else ""
    text = f"{head}: {text.strip().splitlines()[-1]}" if head else text.strip().splitlines()[-1]
  return " ".join(line.strip() for line in text.splitlines() if line.strip())


# How absl and ml_collections word a value that does not parse as its key's type, and what the key needs.
WRONG_TYPES = (
  ("invalid literal for int()", "an integer"),
  ("could not convert string to float", "a number"),
  ("Non-boolean argument to boolean flag", "True or False"),
)


def _wrong_type(text: str) -> str | None:
  """ "--config.batch_size must be an integer, not 'abc'." for a value of the wrong type, else None."""
  flag, _, reason = text.partition(": ")
  key, equals, value = flag.removeprefix("flag ").partition("=")
  needs = next((needed for known, needed in WRONG_TYPES if known in reason), None)
  if not flag.startswith("flag --config.") or not equals or needs is None:
    return None
  return f"{key} must be {needs}, not {value!r}."


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


HELP = {"--help": True, "-h": True, "-?": True, "--helpshort": True, "--helpfull": False}  # flag -> short help


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file, key or value reported in one line; --help exits 0."""
  if asked := [HELP[arg] for arg in argv[1:] if arg in HELP]:
    app.usage(shorthelp=asked[0], writeto_stdout=True, exitcode=0)
  try:
    argv = flags.FLAGS(argv)
    _ = _CONFIG.value.method  # config_flags defers a file's load error to the first read of the config.
  except flags.Error as error:  # A missing --workdir, a value of the wrong type, ...
    _fail(_wrong_type(str(error)) or f"{_one_line(error)} (see --helpshort)")
  except (OSError, SyntaxError, KeyError, AttributeError, ValueError, TypeError) as error:
    if os.environ.get(TRACEBACK):
      raise
    cause = error.__cause__ or error
    message = str(cause).strip().splitlines()[-1].strip() if isinstance(cause, OSError) else _one_line(cause)
    _fail(f"the config could not be loaded: {message} ({TRACEBACK}=1 shows the traceback)")
  return argv


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax and tfds log every file operation at INFO.
  if not os.environ.get(TRACEBACK):
    quiet.checkpoint_logs_left_to_the_run()
  try:
    distributed.initialize(_CONFIG.value)
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except USER_ERRORS as error:
    if os.environ.get(TRACEBACK):
      raise
    print(f"error: {_one_line(error)}", file=sys.stderr)
    return 1
  except train.Interrupted as stopped:
    print(stopped, "Rerun the same command to resume.", file=sys.stderr)
    return 128 + stopped.signum
  if summary["reported_top1"] is not None and summary["process_index"] == 0:
    print(
      f"Reported top-1 ({summary['reported_head']}, median of the last {summary['median_of_last']}):",
      f"{summary['reported_top1']:.2f}",
    )
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
