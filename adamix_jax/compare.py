"""Finished runs side by side: one table of mean ± std over seeds, and a plot of the evaluation curves.

    python -m adamix_jax.compare runs/semisup/* --plot docs/semisup.png
    python -m adamix_jax.compare --robustness runs/quickstart runs/qs_mixup   # their evaluate reports

However the runs were launched (a shell loop, a SLURM array, a TPU queue), each workdir holds its config and
evaluation history (in its newest checkpoint) and, once finished, its summary.json. Runs whose configs
differ only in the seed (and in where or how they ran: data_dir, devices, logging, checkpointing) form one
group; a group is named by the config keys that tell it apart from the others. Workdirs are only read.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
from typing import Any

# Keys that do not change what a run learns; runs differing only in these (and the seed) are one group.
IGNORED = ("seed", "data.data_dir", "num_devices", "eval_batch_size", "data.cache", "data.input_slices")
IGNORED_PREFIXES = ("distributed.", "log.", "checkpoint.")


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir: its flattened config, evaluation history and summary (None while unfinished)."""

  workdir: str
  config: dict[str, Any]
  history: list[dict[str, Any]]
  summary: dict[str, Any] | None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}; lists become tuples (hashable)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat |= flatten(value, f"{prefix}{key}.")
    else:
      flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return flat


def read_run(workdir: str) -> Run:
  """Reads a workdir without touching it.

  Raises:
    ValueError: the directory holds no checkpoint of a run.
  """
  from adamix_jax.checkpointing import Checkpoints  # orbax: imported only when a workdir is read.

  checkpoints = Checkpoints(workdir, read_only=True)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise ValueError(f"{workdir} holds no checkpoint: not a run's workdir, or a run that never saved.")
    meta = checkpoints.read_meta(step)
  finally:
    checkpoints.close()
  summary = None
  path = os.path.join(workdir, "summary.json")
  if os.path.exists(path):
    with open(path) as f:
      summary = json.load(f)
  return Run(workdir, flatten(meta["config"]), meta["eval_history"], summary)


def _learning_keys(config: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in config.items() if k not in IGNORED and not k.startswith(IGNORED_PREFIXES)}


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
  """Runs grouped by their config without the seed, each group named by its method and, where groups share
  a method, by (up to three of) the keys that tell them apart."""
  groups: dict[tuple, list[Run]] = {}
  for run in runs:
    groups.setdefault(tuple(sorted(_learning_keys(run.config).items(), key=str)), []).append(run)
  named = {}
  for key, members in groups.items():
    config = dict(key)
    others = [dict(k) for k in groups if k != key and dict(k).get("method") == config.get("method")]
    differing = [
      k for k in sorted(config)
      if any(k in other and str(other[k]) != str(config[k]) for other in others)
    ]  # fmt: skip
    name = str(config.get("method", "?"))
    if differing:
      shown = ", ".join(f"{k}={config[k]}" for k in differing[:3])
      name += f" ({shown}{', ...' if len(differing) > 3 else ''})"
    while name in named:
      name += "'"
    named[name] = members
  return named


def reported_head(run: Run) -> str:
  """The head the run reports (its summary's, or the config's choice)."""
  if run.summary:
    return run.summary["reported_head"]
  from adamix_jax import config as config_lib  # Resolves "auto" from the method's default.

  return config_lib.reported_head_of(run.config["method"], run.config["eval.report"])


def table(groups: dict[str, list[Run]]) -> str:
  """A markdown table: each group's reported head, mean ± std over its finished runs, runs, epochs."""
  lines = [
    "| runs of | reported head | top-1 (%) mean ± std | runs | epochs | steps |",
    "|---|---|---|---|---|---|",
  ]
  for name, members in groups.items():
    finished = [run for run in members if run.summary and run.summary["reported_top1"] is not None]
    values = [run.summary["reported_top1"] for run in finished]
    if values:
      spread = statistics.stdev(values) if len(values) > 1 else 0.0
      result = f"{statistics.mean(values):.2f} ± {spread:.2f}"
    else:
      result = "unfinished"
    unfinished = len(members) - len(finished)
    count = f"{len(finished)}" + (f" (+{unfinished} unfinished)" if unfinished else "")
    epochs = members[0].config.get("num_epochs")
    steps = finished[0].summary["steps"] if finished else "-"
    lines.append(f"| {name} | {reported_head(members[0])} | {result} | {count} | {epochs} | {steps} |")
  return "\n".join(lines)


def plot(groups: dict[str, list[Run]], path: str) -> None:
  """The reported head's top-1 against the epoch: each group's mean over its runs, shaded min to max."""
  import numpy as np
  from matplotlib.figure import Figure  # Not pyplot: no backend is switched, a notebook's plots keep working.

  fig = Figure(figsize=(9, 5))
  ax = fig.subplots()
  for name, members in groups.items():
    head = reported_head(members[0])
    curves = [{entry["epoch"]: entry["metrics"][f"{head}/top1"] for entry in run.history} for run in members]
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    if not epochs:
      continue
    values = np.array([[c[e] for e in epochs] for c in curves])
    line = ax.plot(epochs, values.mean(0), label=f"{name} ({len(members)} runs)")[0]
    if len(members) > 1:
      ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
  ax.set_xlabel("epoch")
  ax.set_ylabel("top-1 (%) of the reported head")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def robustness_table(reports: list[dict]) -> str:
  """The robustness reports (`python -m adamix_jax.evaluate`) of several runs as one markdown table: a row
  per number, a column per run; each corruption as its mean over the severities."""
  from adamix_jax.evaluate import report_rows

  columns = [dict(report_rows(report, per_severity=False)) for report in reports]
  names = list(dict.fromkeys(name for column in columns for name in column))
  lines = [
    "| | " + " | ".join(f"{r['method']}, {r['head']}, step {r['step']} ({r['workdir']})" for r in reports) + " |",
    "|---|" + "---|" * len(reports),
  ]
  lines += [f"| {name} | " + " | ".join(column.get(name, "–") for column in columns) + " |" for name in names]
  return "\n".join(lines)


def _robustness_main(workdirs: list[str]) -> int:
  reports = []
  for workdir in workdirs:
    path = os.path.join(workdir, "robustness", "robustness.json")
    if not os.path.isfile(path):
      print(
        f"error: {path} does not exist: run python -m adamix_jax.evaluate --workdir {workdir} first.", file=sys.stderr
      )
      return 1
    with open(path) as f:
      reports.append(json.load(f))
  print(robustness_table(reports))
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.compare", description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="run workdirs (finished or not)")
  parser.add_argument("--plot", default="", help="write the evaluation curves to this PNG")
  parser.add_argument(
    "--robustness", action="store_true", help="compare the runs' robustness reports (python -m adamix_jax.evaluate)"
  )
  args = parser.parse_args(argv)
  if args.robustness:
    return _robustness_main(args.workdirs)
  from absl import logging

  logging.set_verbosity(logging.ERROR)  # Orbax warns that a read-only manager will not save: it will not.
  runs, skipped = [], []
  for workdir in args.workdirs:
    try:
      runs.append(read_run(workdir))
    except ValueError as error:
      skipped.append(str(error))
  for message in skipped:
    print(f"skipped: {message}", file=sys.stderr)
  if not runs:
    print("error: none of the directories holds a run.", file=sys.stderr)
    return 1
  groups = group_runs(runs)
  print(table(groups))
  if args.plot:
    plot(groups, args.plot)
    print(f"Curves: {args.plot}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
