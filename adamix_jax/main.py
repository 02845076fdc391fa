"""Command line: `python -m adamix_jax.main --config configs/cifar100.py --workdir runs/c100`.

Any config value can be overridden (`--config.num_epochs=200`), a config file can take a variant
(`--config configs/cifar100.py:smoke`), and rerunning the same command resumes from the workdir's latest
checkpoint. Run the same command on every host of a pod.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Quiet TensorFlow's start-up banners (it only feeds data).

from absl import app, flags, logging
from ml_collections import config_flags

from adamix_jax import config as config_lib
from adamix_jax import data, distributed, train

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Config file, optionally with a variant: FILE.py:VARIANT.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints, metrics.jsonl, TensorBoard and summary.json."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # Orbax and tfds log every file operation at INFO.
  try:
    distributed.initialize(_CONFIG.value)
    summary = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, data.DataNotPreparedError, train.NonFiniteLossError) as error:
    print(f"error: {error}", file=sys.stderr)
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
  app.run(lambda argv: sys.exit(main(argv)))
