"""Finished runs side by side: one table of mean ± std over seeds, and a plot of the evaluation curves::

    python -m adamix_jax.tools.compare runs/semisup/* --plot docs/semisup.png
    python -m adamix_jax.tools.compare runs/compare/*/ --heads ema/one,online/one   # every head's last top-1 too
    python -m adamix_jax.tools.compare --robustness runs/quickstart runs/qs_mixup   # their evaluate reports

However the runs were launched (a shell loop, a SLURM array, a TPU queue), each workdir holds its config and
evaluation history (in its newest checkpoint) and, once finished, its summary.json. Runs whose configs
differ only in the seed (and in where or how they ran: data_dir, devices, logging, checkpointing) form one
group; a group is named by its method ("+dm" with the Decoupled Mixup loss) and, where two groups share that
name, by the config keys that tell them apart. Workdirs are only read.
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys
from typing import Any

from adamix_jax.config import RUNTIME_KEYS, RUNTIME_PREFIXES

# Keys that do not change what a run learns; runs differing only in these (and the seed) are one group.
IGNORED = ("seed", *RUNTIME_KEYS)
IGNORED_PREFIXES = RUNTIME_PREFIXES


@dataclasses.dataclass(frozen=True)
class Run:
  """One workdir: its flattened config (the newest checkpoint's), evaluation history, summary (None while
  unfinished) and the config changes it accepted on resume (`adamix_jax.resuming`)."""

  workdir: str
  config: dict[str, Any]
  history: list[dict[str, Any]]
  summary: dict[str, Any] | None
  changes: list[dict[str, Any]] = dataclasses.field(default_factory=list)


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
  from adamix_jax.config import base_config

  # A run saved before a config key existed ran with that key's default: fill it in, so that such a run
  # groups with newer runs of the same settings.
  config = flatten(base_config().to_dict()) | flatten(meta["config"])
  from adamix_jax import resuming

  return Run(workdir, config, meta["eval_history"], summary, resuming.read(workdir))


def _learning_keys(config: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in config.items() if k not in IGNORED and not k.startswith(IGNORED_PREFIXES)}


def method_label(config: dict[str, Any]) -> str:
  """The method, with "+dm" when a supervised mixup adds the Decoupled Mixup loss (loss.dm.eta > 0):
  "cutmix+dm". DMixMatch's DM term is part of the method, so it stays "dmixmatch"."""
  from adamix_jax.methods import METHODS, StaticMixup

  method = str(config.get("method", "?"))
  with_dm = config.get("loss.dm.eta", 0) > 0 and issubclass(METHODS.get(method, type), StaticMixup)
  return method + ("+dm" if with_dm else "")


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
  """Runs grouped by their config without the seed, each group named by its method (`method_label`) and,
  where groups share that label, by (up to three of) the keys that tell them apart."""
  groups: dict[tuple, list[Run]] = {}
  for run in runs:
    groups.setdefault(tuple(sorted(_learning_keys(run.config).items(), key=str)), []).append(run)
  named = {}
  for key, members in groups.items():
    config = dict(key)
    name = method_label(config)
    others = [dict(k) for k in groups if k != key and method_label(dict(k)) == name]
    differing = [
      k for k in sorted(config)
      if any(k in other and str(other[k]) != str(config[k]) for other in others)
    ]  # fmt: skip
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
  from adamix_jax import methods  # Resolves "auto" from the method's default.

  return methods.reported_head(run.config["method"], run.config["eval.report"])


def _mean_std(values: list[float]) -> str:
  if not values:
    return "–"
  spread = statistics.stdev(values) if len(values) > 1 else 0.0
  return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def table(groups: dict[str, list[Run]], heads: tuple[str, ...] = ()) -> str:
  """A markdown table: each group's reported head, mean ± std over its finished runs, runs, epochs; then,
  for each of `heads` (e.g. "online/one"), that head's top-1 at the last evaluation, mean ± std ("–" where
  the runs have no such head)."""
  lines = [
    "| runs of | reported head | top-1 (%) mean ± std | runs | epochs | steps |" + "".join(f" {h} |" for h in heads),
    "|---|---|---|---|---|---|" + "---|" * len(heads),
  ]
  for name, members in groups.items():
    finished = [run for run in members if run.summary and run.summary["reported_top1"] is not None]
    result = _mean_std([run.summary["reported_top1"] for run in finished]) if finished else "unfinished"
    unfinished = len(members) - len(finished)
    count = f"{len(finished)}" + (f" (+{unfinished} unfinished)" if unfinished else "")
    epochs = members[0].config.get("num_epochs")
    steps = finished[0].summary["steps"] if finished else "-"
    extra = ""
    for head in heads:
      last = [run.summary.get("last_eval", {}).get("metrics", {}).get(f"{head}/top1") for run in finished]
      extra += f" {_mean_std([v for v in last if v is not None])} |"
    lines.append(f"| {name} | {reported_head(members[0])} | {result} | {count} | {epochs} | {steps} |{extra}")
  return "\n".join(lines)


def changed_on_resume(runs: list[Run]) -> str:
  """One line per config change a run accepted on resume (its config above is the one after them)."""
  from adamix_jax.resuming import describe

  return "\n".join(
    f"{run.workdir}: changed on resume at step {entry['step']}: {describe(entry['changes'])}"
    for run in runs
    for entry in run.changes
  )


def plot(groups: dict[str, list[Run]], path: str) -> None:
  """The reported head's top-1 against the epoch: each group's mean over its runs, shaded min to max; on the
  left the whole run, on the right its last third, where the methods' differences are read."""
  import numpy as np
  from matplotlib.figure import Figure  # Not pyplot: no backend is switched, a notebook's plots keep working.

  fig = Figure(figsize=(13, 5))
  whole, end = fig.subplots(1, 2)
  last_epoch = 0
  for name, members in groups.items():
    head = reported_head(members[0])
    curves = [{entry["epoch"]: entry["metrics"][f"{head}/top1"] for entry in run.history} for run in members]
    epochs = sorted(set.intersection(*(set(c) for c in curves)))
    if not epochs:
      continue
    last_epoch = max(last_epoch, epochs[-1])
    values = np.array([[c[e] for e in epochs] for c in curves])
    for ax in (whole, end):
      line = ax.plot(epochs, values.mean(0), label=f"{name} ({len(members)} runs)")[0]
      if len(members) > 1:
        ax.fill_between(epochs, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
  start = last_epoch - max(1, last_epoch // 3)
  end.set_xlim(start, last_epoch)
  shown = [
    y for line in end.get_lines() for x, y in zip(*line.get_data(), strict=True) if x >= start
  ]  # fmt: skip
  if shown:
    margin = 0.1 * (max(shown) - min(shown)) + 0.1
    end.set_ylim(min(shown) - margin, max(shown) + margin)
  whole.set_title("whole run")
  end.set_title(f"last third (epochs {start}-{last_epoch}), means")
  for ax in (whole, end):
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 (%) of the reported head")
    ax.grid(alpha=0.3)
  whole.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def robustness_table(reports: list[dict]) -> str:
  """The robustness reports (`python -m adamix_jax.tools.evaluate`) of several runs as one markdown table: a row
  per number, a column per run; each corruption as its mean over the severities."""
  from adamix_jax.tools.robustness_report import report_rows

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
        f"error: {path} does not exist: run python -m adamix_jax.tools.evaluate --workdir {workdir} first.",
        file=sys.stderr,
      )
      return 1
    with open(path) as f:
      reports.append(json.load(f))
  print(robustness_table(reports))
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.tools.compare", description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="run workdirs (finished or not)")
  parser.add_argument("--plot", default="", help="write the evaluation curves to this PNG")
  parser.add_argument(
    "--heads",
    default="",
    help="comma-separated heads to add as columns, each its top-1 at the last evaluation (e.g. ema/one,online/one)",
  )
  parser.add_argument(
    "--robustness",
    action="store_true",
    help="compare the runs' robustness reports (python -m adamix_jax.tools.evaluate)",
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
  print(table(groups, tuple(filter(None, args.heads.split(",")))))
  if notes := changed_on_resume(runs):
    print("\n" + notes)
  if args.plot:
    plot(groups, args.plot)
    print(f"Curves: {args.plot}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
