"""Robustness and calibration of a trained run: `python -m adamix_jax.evaluate --workdir runs/c100`.

    python -m adamix_jax.evaluate --workdir WORKDIR [--suite calibration,fgsm,occlusion,corruption]
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
import itertools
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from adamix_jax import corruptions, data, losses, methods, quiet, robustness
from adamix_jax.experiment import load_run
from adamix_jax.sharding import AXIS, host_value, make_mesh, shard_batch

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.

SUITES = ("calibration", "fgsm", "occlusion", "corruption", "pgd")


class EvaluationError(ValueError):
  """The evaluation cannot run as asked (a head the run does not have, an unknown suite). Says what to do."""


def _heads(method, state) -> list[str]:
  return [f"{network}/{head}" for network in state.networks for head in method.head_names]


def make_robustness_step(
  nets, info, mesh, head: str, suites, eps: float, space: str, sizes: tuple[int, ...], pgd_steps: int = 10
):
  """A jitted (state, batch, key) -> summed counts of every suite over the devices."""
  network, _, head_name = head.partition("/")
  mean, std = jnp.asarray(info.mean, jnp.float32), jnp.asarray(info.std, jnp.float32)

  def per_device(state, batch, key):
    key = jax.random.fold_in(key, lax.axis_index(AXIS))
    variables = state.variables(network)

    def logits_of(normalized):
      return nets.classifier.apply(variables, normalized, train=False).logits[head_name]

    pixels = batch["images"].astype(jnp.float32) / 255.0
    labels, weights = batch["labels"], batch["mask"].astype(jnp.float32)

    def correct(logits):
      return jnp.sum((jnp.argmax(logits, -1) == labels) * weights)

    def summed_loss(normalized):
      return jnp.sum(losses.cross_entropy(logits_of(normalized), labels, weights)) * labels.shape[0]

    clean = logits_of((pixels - mean) / std)
    counts = {"count": jnp.sum(weights), "clean_correct": correct(clean)}
    if "calibration" in suites:
      counts["calibration"] = robustness.calibration_counts(jax.nn.softmax(clean), labels, weights)
    if "fgsm" in suites:
      attacked = robustness.fgsm(summed_loss, pixels, eps, space=space, mean=info.mean, std=info.std)
      counts["fgsm_correct"] = correct(logits_of(attacked))
      counts["fgsm_loss"] = summed_loss(attacked)
      counts["clean_loss"] = summed_loss((pixels - mean) / std)
    if "pgd" in suites:
      attacked = robustness.pgd(
        summed_loss, pixels, eps, pgd_steps, eps / 4, jax.random.fold_in(key, 1), mean=info.mean, std=info.std
      )
      counts["pgd_correct"] = correct(logits_of(attacked))
    if "occlusion" in suites:
      keys = jax.random.split(key, len(sizes))
      occluded = [robustness.occlude(pixels, size, k) for size, k in zip(sizes, keys, strict=True)]
      counts["occlusion_correct"] = jnp.stack([correct(logits_of((x - mean) / std)) for x in occluded])
    return lax.psum(counts, AXIS)

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=P())
  return jax.jit(step)


def evaluate_run(
  workdir: str,
  suites: tuple[str, ...] | None = None,
  head: str = "auto",
  eps: float = 8 / 255,
  space: str = "pixel",
  sizes: tuple[int, ...] = (0, 4, 8, 12, 16),
  step: int | None = None,
  corruption_dir: str = "",
  corruption_baseline: str = "",
  pgd_steps: int = 10,
) -> dict:
  """Evaluates the checkpoint at `step` (default: the latest) and writes the report into WORKDIR/robustness.

  Args:
    suites: of SUITES; None: calibration, fgsm, occlusion and corruption (the last left out for a dataset
      with a released "-C" set when no `corruption_dir` is given).
    head, eps, space, sizes, pgd_steps: as the command-line options of the same names.
    corruption_dir: a released set's directory (corruptions.read_npy_layout / read_folder_layout).
    corruption_baseline: a baseline run's workdir or robustness.json, for the mCE.

  Returns:
    The report (also robustness.json).

  Raises:
    EvaluationError: an unknown suite or FGSM space, a head the run does not have, an occlusion larger
      than the images, a baseline report without the corruption suite.
    corruptions.CorruptionError: a missing or malformed corruption directory.
    FileNotFoundError: the workdir has no checkpoint.
  """
  for suite in suites or ():
    if suite not in SUITES:
      raise EvaluationError(f"--suite {suite!r} is not known. Valid choices: {', '.join(SUITES)}.")
  if "pgd" in (suites or ()) and pgd_steps < 1:
    raise EvaluationError(f"--pgd_steps {pgd_steps} must be at least 1.")
  if space not in robustness.FGSM_SPACES:
    raise EvaluationError(f"--fgsm_space {space!r} is not known. Valid choices: {', '.join(robustness.FGSM_SPACES)}.")
  mesh = make_mesh(0)
  run = load_run(workdir, step, mesh=mesh)
  config, info, method, nets, state = run.config, run.info, run.experiment.method, run.experiment.nets, run.state
  if suites is None:  # Every suite; the corruptions where they need no directory or one is given.
    needs_directory = config.data.name in corruptions.RELEASED and not corruption_dir
    suites = tuple(s for s in SUITES if s != "pgd" and (s != "corruption" or not needs_directory))
  head = methods.reported_head(config.method, config.eval.report) if head == "auto" else head
  if head not in _heads(method, state):
    raise EvaluationError(
      f"--head {head!r} is not a head of this run ({config.method}). Valid choices: {', '.join(_heads(method, state))}."
    )
  if max(sizes) > min(info.image_shape[:2]):
    raise EvaluationError(f"--occlusion_sizes {max(sizes)} exceeds the {info.image_shape[0]}-pixel images.")
  if "corruption" in suites:  # Opened first: a missing or malformed directory fails before any evaluation.
    clean = data.InputPipeline(config, info).first_eval_examples(info.num_eval) if not corruption_dir else None
    corrupted = corruptions.open_corruptions(config, info, corruption_dir, clean)
    if corruption_baseline and not set(_read_baseline(corruption_baseline)["top1"]) & set(corrupted.names):
      raise EvaluationError("--corruption_baseline: its corruption report shares no corruption with this set.")
  config.eval_batch_size -= config.eval_batch_size % mesh.size  # Whole device shards.
  pipeline = data.InputPipeline(config, info, process_index=jax.process_index(), process_count=jax.process_count())
  robustness_step = make_robustness_step(nets, info, mesh, head, suites, eps, space, tuple(sizes), pgd_steps)
  totals, key = None, jax.random.key(config.seed)
  batches = data.num_eval_batches(info, config, jax.process_count())
  for index, batch in enumerate(pipeline.eval_batches()):
    counts = robustness_step(state, shard_batch(mesh, batch), jax.random.fold_in(key, index))
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
    if jax.process_index() == 0:
      print(f"\rrobustness: batch {index + 1}/{batches}", end="", file=sys.stderr, flush=True)
  print(file=sys.stderr)
  totals = host_value(totals)
  count = float(totals["count"])
  report = {
    "workdir": workdir,
    "step": int(host_value(state.step)),
    "method": config.method,
    "head": head,
    "examples": int(count),
    "top1": 100 * float(totals["clean_correct"]) / count,
  }
  if "calibration" in suites:
    report["calibration"] = robustness.calibration_report(totals["calibration"])
  if "fgsm" in suites:
    report["fgsm"] = {
      "eps": eps,
      "space": space,
      "top1": 100 * float(totals["fgsm_correct"]) / count,
      "loss": float(totals["fgsm_loss"]) / count,
      "clean_loss": float(totals["clean_loss"]) / count,
    }
  if "pgd" in suites:
    report["pgd"] = {
      "eps": eps,
      "steps": pgd_steps,
      "step_size": eps / 4,
      "top1": 100 * float(totals["pgd_correct"]) / count,
    }
  if "occlusion" in suites:
    report["occlusion"] = {"sizes": list(sizes), "top1": (100 * totals["occlusion_correct"] / count).tolist()}
  if "corruption" in suites:
    clean_step = make_robustness_step(nets, info, mesh, head, (), eps, space, (0,))
    report["corruption"] = corruption_report(
      corrupted, lambda batch: clean_step(state, shard_batch(mesh, batch), key), config.eval_batch_size
    )
    if corruption_baseline:
      report["corruption"]["mce"] = mean_corruption_error(report["corruption"], _read_baseline(corruption_baseline))
  if jax.process_index() == 0:
    _write(report, os.path.join(workdir, "robustness"))
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


def mean_corruption_error(report: dict, baseline: dict) -> dict:
  """mCE against a baseline's corruption report: CE_c = sum_s err(c, s) / sum_s err_baseline(c, s) for each
  corruption c both have, mCE = their mean, in % (Hendrycks & Dietterich, with a run as the baseline)."""
  shared = [name for name in report["top1"] if name in baseline["top1"]]
  ce = {
    name: 100 * sum(100 - t for t in report["top1"][name]) / sum(100 - t for t in baseline["top1"][name])
    for name in shared
  }
  return {"ce": ce, "mce": float(np.mean(list(ce.values()))), "baseline_set": baseline["set"]}


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


def report_rows(report: dict, per_severity: bool = True) -> list[tuple[str, str]]:
  """The report's numbers as (name, formatted value) rows, in the order of the markdown table.

  Args:
    per_severity: each corruption's top-1 at severities 1-5; otherwise their mean.
  """
  rows = [("clean top-1 (%)", f"{report['top1']:.2f}")]
  if "calibration" in report:
    c = report["calibration"]
    rows += [("ECE (%, 15 bins)", f"{c['ece']:.2f}"), ("NLL", f"{c['nll']:.4f}"), ("Brier", f"{c['brier']:.4f}")]
  if "fgsm" in report:
    f = report["fgsm"]
    rows.append((f"FGSM top-1 (%, eps {f['eps']:.4f}, {f['space']})", f"{f['top1']:.2f}"))
  if "pgd" in report:
    g = report["pgd"]
    rows.append((f"PGD-{g['steps']} top-1 (%, eps {g['eps']:.4f}, pixel)", f"{g['top1']:.2f}"))
  if "occlusion" in report:
    o = report["occlusion"]
    rows += [(f"occlusion {s}x{s} top-1 (%)", f"{t:.2f}") for s, t in zip(o["sizes"], o["top1"], strict=True)]
  if "corruption" in report:
    c = report["corruption"]
    rows.append((f"corruption mean top-1 (%, {len(c['top1'])} x 5)", f"{c['mean_top1']:.2f}"))
    if "mce" in c:
      rows.append(("mCE (%, against the baseline run)", f"{c['mce']['mce']:.2f}"))
    for name, values in c["top1"].items():
      if per_severity:
        rows.append((f"corruption {name} top-1 (%, severities 1-5)", " / ".join(f"{t:.1f}" for t in values)))
      else:
        rows.append((f"corruption {name} top-1 (%, mean of severities 1-5)", f"{np.mean(values):.2f}"))
  return rows


def describe(report: dict) -> str:
  """'<method>, <head>, step N, n test images': what a report evaluated."""
  return f"{report['method']}, {report['head']}, step {report['step']}, {report['examples']} test images"


def markdown(report: dict) -> str:
  """The report as a markdown table."""
  rows = report_rows(report)
  return "\n".join([f"| {describe(report)} | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def _write(report: dict, out: str) -> None:
  import matplotlib
  from matplotlib.figure import Figure  # Not pyplot: no backend is switched, a notebook's plots keep working.

  tf.io.gfile.makedirs(out)
  with tf.io.gfile.GFile(os.path.join(out, "robustness.json"), "w") as f:
    json.dump(report, f, indent=1)
  with tf.io.gfile.GFile(os.path.join(out, "robustness.md"), "w") as f:
    f.write(markdown(report) + "\n")
  scalars = {"top1": report["top1"]}
  if "calibration" in report:
    bins = report["calibration"]["bins"]
    edges = np.linspace(0, 1, len(bins["count"]) + 1)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.bar(edges[:-1], bins["accuracy"], width=edges[1] - edges[0], align="edge", edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['method']} {report['head']}: ECE {report['calibration']['ece']:.2f}%")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "reliability.png"), dpi=120)
    scalars |= {f"calibration/{k}": report["calibration"][k] for k in ("ece", "nll", "brier")}
  if "fgsm" in report:
    scalars["fgsm/top1"] = report["fgsm"]["top1"]
  if "pgd" in report:
    scalars["pgd/top1"] = report["pgd"]["top1"]
  if "occlusion" in report:
    occlusion = report["occlusion"]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot(occlusion["sizes"], occlusion["top1"], "o-")
    ax.set_xlabel("occluded square side (pixels)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['method']} {report['head']}: occlusion")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "occlusion.png"), dpi=120)
    scalars |= {f"occlusion/{s}": t for s, t in zip(occlusion["sizes"], occlusion["top1"], strict=True)}
  if "corruption" in report:
    c = report["corruption"]
    names = list(c["top1"])
    values = np.array([c["top1"][name] for name in names])
    fig = Figure(figsize=(max(6, 0.55 * len(names)), 4))
    ax = fig.subplots()
    ax.bar(range(len(names)), values.mean(1), color="lightgray", edgecolor="k", label="mean over severities")
    for severity in range(values.shape[1]):
      ax.plot(
        range(len(names)),
        values[:, severity],
        ".",
        color=matplotlib.colormaps["viridis"](severity / 4),
        label=f"severity {severity + 1}",
      )
    ax.axhline(report["top1"], color="k", ls="--", lw=1, label="clean")
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['method']} {report['head']}: corruptions, mean {c['mean_top1']:.2f}%", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "corruption.png"), dpi=120)
    scalars["corruption/mean_top1"] = c["mean_top1"]
    scalars |= {f"corruption/{name}": float(np.mean(v)) for name, v in c["top1"].items()}
    if "mce" in c:
      scalars["corruption/mce"] = c["mce"]["mce"]
  writer = tf.summary.create_file_writer(os.path.join(out, "tensorboard"))
  with writer.as_default():
    for name, value in scalars.items():
      tf.summary.scalar(f"robustness/{name}", value, step=report["step"])
  writer.close()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.evaluate", description=__doc__.splitlines()[0])
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
    sizes = tuple(int(s) for s in args.occlusion_sizes.split(","))
    suites = tuple(args.suite.split(",")) if args.suite != "auto" else None
    report = evaluate_run(
      args.workdir, suites, args.head, args.fgsm_eps, args.fgsm_space, sizes, args.step,
      args.corruption_dir, args.corruption_baseline, args.pgd_steps,
    )  # fmt: skip
  except (EvaluationError, corruptions.CorruptionError, FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  print(markdown(report))
  print(f"Written to {os.path.join(args.workdir, 'robustness')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
