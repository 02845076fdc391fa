"""Robustness and calibration of a trained run: `python -m adamix_jax.tools.evaluate --workdir runs/c100`::

    python -m adamix_jax.tools.evaluate --workdir WORKDIR [--suite calibration,fgsm,occlusion,corruption]
        [--head ema/one] [--fgsm_eps 0.0313725] [--fgsm_space pixel|normalized] [--pgd_steps 10]
        [--occlusion_sizes 0,4,8,12,16]
        [--corruption_dir DIR] [--corruption_baseline BASELINE_WORKDIR] [--step N]

On the run's test split, with the checkpoint's network and head (default: the run's reported head):

  - calibration: top-1, ECE (15 equal-width bins, %), NLL, Brier score and a reliability diagram;
  - fgsm: top-1 under one FGSM step of eps = 8/255 in pixel space (the [0, 1] image moves, is clipped to
    [0, 1], then normalised); `--fgsm_space normalized` moves the normalised tensor instead, as the
    official code does;
  - occlusion: top-1 as a zeroed square of each size is placed at a random spot of every image (size 0 is
    the clean accuracy); a curve;
  - corruption: top-1 for every corruption and severity 1-5 and their mean (the paper's number), on the
    released CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C in --corruption_dir, or, for a dataset with no
    released set, on corruptions generated from its test split (adamix_jax.corruptions says which); the
    mCE against another run's report with --corruption_baseline.
  - pgd (asked for by name): top-1 under PGD-k in pixel space (random start, k = --pgd_steps signed steps of
    eps / 4, each projected onto the eps-ball and [0, 1]).

The default suite is the first four, the corruptions left out for a dataset with a released set and no
--corruption_dir. Writes WORKDIR/robustness/{robustness.json, robustness.md, reliability.png,
occlusion.png, corruption.png} and TensorBoard scalars (WORKDIR/robustness/tensorboard). The checkpoints
are only read. The evaluation is jitted and sharded over every device (and host) like the training
evaluation; padding is never counted.
"""

import argparse
import dataclasses
import itertools
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from adamix_jax import corruptions, data, methods, robustness
from adamix_jax.experiment import SavedRun, load_run
from adamix_jax.sharding import host_value, make_mesh, shard_batch
from adamix_jax.tools import robustness_report

SUITES = ("calibration", "fgsm", "occlusion", "corruption", "pgd")


class EvaluationError(ValueError):
  """The evaluation cannot run as asked (a head the run does not have, an unknown suite). Says what to do."""


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
  """What `evaluate_run` measures; each field is the command-line option of the same name (checked here).

  Attributes:
    suites: of SUITES; None: calibration, fgsm, occlusion and corruption (the last left out for a dataset
      with a released "-C" set when no `corruption_dir` is given).
    head: "<online|ema>/<head>", or "auto": the run's reported head.
    eps: the FGSM step and the PGD radius (--fgsm_eps); pixel units in pixel space.
    space: where FGSM moves the image (robustness.FGSM_SPACES).
    sizes: the sides of the occluding squares (--occlusion_sizes).
    pgd_steps: PGD's iterations (suite pgd).
    corruption_dir: a released set's directory (corruptions.read_npy_layout / read_folder_layout).
    corruption_baseline: a baseline run's workdir or robustness.json, for the mCE.
  """

  suites: tuple[str, ...] | None = None
  head: str = "auto"
  eps: float = 8 / 255
  space: str = "pixel"
  sizes: tuple[int, ...] = (0, 4, 8, 12, 16)
  pgd_steps: int = 10
  corruption_dir: str = ""
  corruption_baseline: str = ""

  def __post_init__(self):
    for suite in self.suites or ():
      if suite not in SUITES:
        raise EvaluationError(f"--suite {suite!r} is not known. Valid choices: {', '.join(SUITES)}.")
    if "pgd" in (self.suites or ()) and self.pgd_steps < 1:
      raise EvaluationError(f"--pgd_steps {self.pgd_steps} must be at least 1.")
    if self.space not in robustness.FGSM_SPACES:
      valid = ", ".join(robustness.FGSM_SPACES)
      raise EvaluationError(f"--fgsm_space {self.space!r} is not known. Valid choices: {valid}.")

  def for_run(self, run: SavedRun) -> "EvaluationOptions":
    """These options with "auto" and None resolved for `run`, and checked against it."""
    config, info, state = run.config, run.info, run.state
    suites = self.suites
    if suites is None:  # Every suite; the corruptions where they need no directory or one is given.
      needs_directory = config.data.name in corruptions.RELEASED and not self.corruption_dir
      suites = tuple(s for s in SUITES if s != "pgd" and (s != "corruption" or not needs_directory))
    head = methods.reported_head(config.method, config.eval.report) if self.head == "auto" else self.head
    heads = [f"{network}/{name}" for network in state.networks for name in run.experiment.method.head_names]
    if head not in heads:
      raise EvaluationError(
        f"--head {head!r} is not a head of this run ({config.method}). Valid choices: {', '.join(heads)}."
      )
    if max(self.sizes) > min(info.image_shape[:2]):
      side = info.image_shape[0]
      raise EvaluationError(f"--occlusion_sizes {max(self.sizes)} exceeds the {side}-pixel images.")
    return dataclasses.replace(self, suites=suites, head=head)


def evaluate_run(workdir: str, options: EvaluationOptions = EvaluationOptions(), step: int | None = None) -> dict:
  """Evaluates the checkpoint at `step` (default: the latest) and writes the report into WORKDIR/robustness.

  Returns:
    The report (also robustness.json).

  Raises:
    EvaluationError: a head the run does not have, an occlusion larger than the images, a baseline report
      without the corruption suite.
    corruptions.CorruptionError: a missing or malformed corruption directory.
    FileNotFoundError: the workdir has no checkpoint.
  """
  mesh = make_mesh(0)
  run = load_run(workdir, step, mesh=mesh)
  options = options.for_run(run)
  corrupted = _open_corruptions(run, options) if "corruption" in options.suites else None
  run.config.eval_batch_size -= run.config.eval_batch_size % mesh.size  # Whole device shards.
  totals = _suite_counts(run, options, mesh)
  report = _report(workdir, run, options, totals)
  if corrupted is not None:
    clean_step = robustness.make_robustness_step(
      run.experiment.nets, run.info, mesh, options.head, (), 0.0, "pixel", (0,)
    )
    key = jax.random.key(run.config.seed)
    count_correct = lambda batch: clean_step(run.state, shard_batch(mesh, batch), key)
    report["corruption"] = corruption_report(corrupted, count_correct, run.config.eval_batch_size)
    if options.corruption_baseline:
      baseline = _read_baseline(options.corruption_baseline)
      report["corruption"]["mce"] = robustness.mean_corruption_error(report["corruption"], baseline)
  if jax.process_index() == 0:
    robustness_report.write(report, os.path.join(workdir, "robustness"))
  return report


def _open_corruptions(run: SavedRun, options: EvaluationOptions) -> corruptions.CorruptionSet:
  """The corruption set, opened before any evaluation: a missing or malformed directory fails first."""
  config, info = run.config, run.info
  clean = None if options.corruption_dir else data.InputPipeline(config, info).first_eval_examples(info.num_eval)
  corrupted = corruptions.open_corruptions(config, info, options.corruption_dir, clean)
  if options.corruption_baseline and not set(_read_baseline(options.corruption_baseline)["top1"]) & set(
    corrupted.names
  ):
    raise EvaluationError("--corruption_baseline: its corruption report shares no corruption with this set.")
  return corrupted


def _suite_counts(run: SavedRun, options: EvaluationOptions, mesh) -> dict[str, np.ndarray]:
  """Every suite's counts over the test split, summed over the batches, devices and hosts."""
  config, info = run.config, run.info
  pipeline = data.InputPipeline(config, info, process_index=jax.process_index(), process_count=jax.process_count())
  step = robustness.make_robustness_step(
    run.experiment.nets, info, mesh, options.head, options.suites, options.eps, options.space, tuple(options.sizes),
    options.pgd_steps,
  )  # fmt: skip
  totals, key = None, jax.random.key(config.seed)
  batches = data.num_eval_batches(info, config, jax.process_count())
  for index, batch in enumerate(pipeline.eval_batches()):
    counts = step(run.state, shard_batch(mesh, batch), jax.random.fold_in(key, index))
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
    if jax.process_index() == 0:
      print(f"\rrobustness: batch {index + 1}/{batches}", end="", file=sys.stderr, flush=True)
  print(file=sys.stderr)
  return host_value(totals)


def _report(workdir: str, run: SavedRun, options: EvaluationOptions, totals: dict[str, np.ndarray]) -> dict:
  """The report of every suite but the corruptions, in % of the examples."""
  count, suites, eps = float(totals["count"]), options.suites, options.eps
  report = {
    "workdir": workdir,
    "step": int(host_value(run.state.step)),
    "method": run.config.method,
    "head": options.head,
    "examples": int(count),
    "top1": 100 * float(totals["clean_correct"]) / count,
  }
  if "calibration" in suites:
    report["calibration"] = robustness.calibration_report(totals["calibration"])
  if "fgsm" in suites:
    report["fgsm"] = {
      "eps": eps,
      "space": options.space,
      "top1": 100 * float(totals["fgsm_correct"]) / count,
      "loss": float(totals["fgsm_loss"]) / count,
      "clean_loss": float(totals["clean_loss"]) / count,
    }
  if "pgd" in suites:
    report["pgd"] = {
      "eps": eps,
      "steps": options.pgd_steps,
      "step_size": eps / 4,
      "top1": 100 * float(totals["pgd_correct"]) / count,
    }
  if "occlusion" in suites:
    report["occlusion"] = {"sizes": list(options.sizes), "top1": (100 * totals["occlusion_correct"] / count).tolist()}
  return report


def _padded_batches(images: np.ndarray, labels: np.ndarray, local_batch: int, num_batches: int):
  """Host arrays as `num_batches` whole batches of `local_batch`, padded (mask False on padding)."""
  for start in range(0, num_batches * local_batch, local_batch):
    chunk, chunk_labels = images[start : start + local_batch], labels[start : start + local_batch]
    missing = local_batch - len(chunk)
    yield {
      "images": np.concatenate([chunk, np.zeros((missing, *images.shape[1:]), images.dtype)]),
      "labels": np.concatenate([chunk_labels, np.zeros(missing, np.int32)]),
      "mask": np.arange(local_batch) < len(chunk),
    }


def corruption_report(corrupted: corruptions.CorruptionSet, count_correct, eval_batch_size: int) -> dict:
  """Top-1 of every (corruption, severity) of the set, each process evaluating its share of the examples.

  Args:
    count_correct: a host batch {"images", "labels", "mask"} -> summed counts {"count", "clean_correct"}
      over every device and process.
  """
  index, processes = jax.process_index(), jax.process_count()
  local_batch = eval_batch_size // processes
  num_batches = math.ceil(math.ceil(corrupted.size / processes) / local_batch)
  top1, total = {}, len(corrupted.names) * len(corruptions.SEVERITIES)
  for number, (name, severity) in enumerate(itertools.product(corrupted.names, corruptions.SEVERITIES)):
    if index == 0:
      print(f"\rcorruption: {name} severity {severity} ({number + 1}/{total})", end="", file=sys.stderr, flush=True)
    images, labels = corrupted.load(name, severity, (index, processes))
    counts = [count_correct(batch) for batch in _padded_batches(images, labels, local_batch, num_batches)]
    correct, count = (sum(float(host_value(c[key])) for c in counts) for key in ("clean_correct", "count"))
    top1.setdefault(name, []).append(100 * correct / count)
  print(file=sys.stderr)
  values = np.array(list(top1.values()))  # [corruptions, severities]
  return {
    "set": corrupted.description,
    "top1": top1,
    "mean_top1": float(values.mean()),
    "mean_top1_by_severity": values.mean(0).tolist(),
  }


def _read_baseline(path: str) -> dict:
  """The corruption report of a baseline: its robustness.json, or a workdir holding robustness/robustness.json."""
  if os.path.isdir(path):
    path = os.path.join(path, "robustness", "robustness.json")
  if not os.path.isfile(path):
    raise EvaluationError(f"--corruption_baseline: {path} does not exist; evaluate the baseline run first.")
  with open(path) as f:
    baseline = json.load(f)
  if "corruption" not in baseline:
    raise EvaluationError(
      f"--corruption_baseline: {path} has no corruption report; evaluate it with --suite corruption."
    )
  return baseline["corruption"]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.tools.evaluate", description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="the run's workdir (with checkpoints/)")
  parser.add_argument("--suite", default="auto", help=f"comma-separated, of {', '.join(SUITES)} (auto: see above)")
  parser.add_argument("--head", default="auto", help="<online|ema>/<head>; auto: the run's reported head")
  parser.add_argument("--fgsm_eps", type=float, default=8 / 255, help="FGSM step (pixel units for pixel space)")
  parser.add_argument("--fgsm_space", default="pixel", help=f"one of {', '.join(robustness.FGSM_SPACES)}")
  parser.add_argument(
    "--pgd_steps", type=int, default=10, help="PGD iterations (suite pgd; eps --fgsm_eps, step eps/4)"
  )
  parser.add_argument("--occlusion_sizes", default="0,4,8,12,16", help="sides of the zeroed squares")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument(
    "--corruption_dir", default="", help="a released CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C directory"
  )
  parser.add_argument(
    "--corruption_baseline", default="", help="a baseline run's workdir or robustness.json, for the mCE"
  )
  args = parser.parse_args(argv)
  from absl import logging

  logging.set_verbosity(logging.ERROR)  # Orbax warns that a read-only manager will not save: it will not.
  try:
    options = EvaluationOptions(
      suites=tuple(args.suite.split(",")) if args.suite != "auto" else None,
      head=args.head,
      eps=args.fgsm_eps,
      space=args.fgsm_space,
      sizes=tuple(int(s) for s in args.occlusion_sizes.split(",")),
      pgd_steps=args.pgd_steps,
      corruption_dir=args.corruption_dir,
      corruption_baseline=args.corruption_baseline,
    )
    report = evaluate_run(args.workdir, options, args.step)
  except (EvaluationError, corruptions.CorruptionError, FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  print(robustness_report.markdown(report))
  print(f"Written to {os.path.join(args.workdir, 'robustness')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
