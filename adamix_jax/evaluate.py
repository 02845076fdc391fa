"""Robustness and calibration of a trained run: `python -m adamix_jax.evaluate --workdir runs/c100`.

    python -m adamix_jax.evaluate --workdir WORKDIR [--suite calibration,fgsm,occlusion] [--head ema/one]
        [--fgsm_eps 0.0313725] [--fgsm_space pixel|normalized] [--occlusion_sizes 0,4,8,12,16] [--step N]

On the run's test split, with the checkpoint's network and head (default: the run's reported head):
  - calibration: top-1, ECE (15 equal-width bins, %), NLL, Brier score and a reliability diagram;
  - fgsm: top-1 under one FGSM step of eps = 8/255 in pixel space (the [0, 1] image moves, is clipped to
    [0, 1], then normalised); `--fgsm_space normalized` moves the normalised tensor instead, as the
    official code does;
  - occlusion: top-1 as a zeroed square of each size is placed at a random spot of every image (size 0 is
    the clean accuracy); a curve.
Writes WORKDIR/robustness/{robustness.json, robustness.md, reliability.png, occlusion.png} and TensorBoard
scalars (WORKDIR/robustness/tensorboard). The checkpoints are only read. The evaluation is jitted and
sharded over every device like the training evaluation; padding is never counted.
"""

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf
from jax import lax
from jax.sharding import PartitionSpec as P

from adamix_jax import config as config_lib
from adamix_jax import data, losses, robustness
from adamix_jax.sharding import AXIS, host_value, make_mesh, shard_batch
from adamix_jax.visualize import load_run

SUITES = ("calibration", "fgsm", "occlusion")


class EvaluationError(ValueError):
  """The evaluation cannot run as asked (a head the run does not have, an unknown suite). Says what to do."""


def _heads(method, state) -> list[str]:
  networks = ["online"] + (["ema"] if state.ema_params is not None else [])
  return [f"{network}/{head}" for network in networks for head in method.head_names]


def make_robustness_step(nets, info, mesh, head: str, suites, eps: float, space: str, sizes: tuple[int, ...]):
  """A jitted (state, batch, key) -> summed counts of every suite over the devices."""
  network, _, head_name = head.partition("/")
  mean, std = jnp.asarray(info.mean, jnp.float32), jnp.asarray(info.std, jnp.float32)

  def per_device(state, batch, key):
    key = jax.random.fold_in(key, lax.axis_index(AXIS))
    params, stats = (
      (state.params["classifier"], state.batch_stats["classifier"])
      if network == "online"
      else (state.ema_params, state.batch_stats["teacher"])
    )

    def logits_of(normalized):
      variables = {"params": params, "batch_stats": stats}
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
    if "occlusion" in suites:
      keys = jax.random.split(key, len(sizes))
      occluded = [robustness.occlude(pixels, size, k) for size, k in zip(sizes, keys, strict=True)]
      counts["occlusion_correct"] = jnp.stack([correct(logits_of((x - mean) / std)) for x in occluded])
    return lax.psum(counts, AXIS)

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=P())
  return jax.jit(step)


def evaluate_run(
  workdir: str,
  suites=SUITES,
  head: str = "auto",
  eps: float = 8 / 255,
  space: str = "pixel",
  sizes: tuple[int, ...] = (0, 4, 8, 12, 16),
  step: int | None = None,
) -> dict:
  """Evaluates the checkpoint at `step` (default: the latest) and writes the report into WORKDIR/robustness.

  Returns:
    The report (also robustness.json).

  Raises:
    EvaluationError: an unknown suite or FGSM space, a head the run does not have, an occlusion larger
      than the images.
    FileNotFoundError: the workdir has no checkpoint.
  """
  for suite in suites:
    if suite not in SUITES:
      raise EvaluationError(f"--suite {suite!r} is not known. Valid choices: {', '.join(SUITES)}.")
  if space not in robustness.FGSM_SPACES:
    raise EvaluationError(f"--fgsm_space {space!r} is not known. Valid choices: {', '.join(robustness.FGSM_SPACES)}.")
  mesh = make_mesh(0)
  config, info, method, nets, state = load_run(workdir, step, mesh=mesh)
  head = config_lib.reported_head(config) if head == "auto" else head
  if head not in _heads(method, state):
    raise EvaluationError(
      f"--head {head!r} is not a head of this run ({config.method}). Valid choices: {', '.join(_heads(method, state))}."
    )
  if max(sizes) > min(info.image_shape[:2]):
    raise EvaluationError(f"--occlusion_sizes {max(sizes)} exceeds the {info.image_shape[0]}-pixel images.")
  config.eval_batch_size -= config.eval_batch_size % mesh.size  # Whole device shards.
  pipeline = data.InputPipeline(config, info, process_index=jax.process_index(), process_count=jax.process_count())
  robustness_step = make_robustness_step(nets, info, mesh, head, suites, eps, space, tuple(sizes))
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
  if "occlusion" in suites:
    report["occlusion"] = {"sizes": list(sizes), "top1": (100 * totals["occlusion_correct"] / count).tolist()}
  if jax.process_index() == 0:
    _write(report, os.path.join(workdir, "robustness"))
  return report


def markdown(report: dict) -> str:
  """The report as a markdown table."""
  rows = [("clean top-1 (%)", f"{report['top1']:.2f}")]
  if "calibration" in report:
    c = report["calibration"]
    rows += [("ECE (%, 15 bins)", f"{c['ece']:.2f}"), ("NLL", f"{c['nll']:.4f}"), ("Brier", f"{c['brier']:.4f}")]
  if "fgsm" in report:
    f = report["fgsm"]
    rows.append((f"FGSM top-1 (%, eps {f['eps']:.4f}, {f['space']})", f"{f['top1']:.2f}"))
  if "occlusion" in report:
    o = report["occlusion"]
    rows += [(f"occlusion {s}x{s} top-1 (%)", f"{t:.2f}") for s, t in zip(o["sizes"], o["top1"], strict=True)]
  header = f"{report['method']}, {report['head']}, step {report['step']}, {report['examples']} test images"
  return "\n".join([f"| {header} | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def _write(report: dict, out: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  tf.io.gfile.makedirs(out)
  with tf.io.gfile.GFile(os.path.join(out, "robustness.json"), "w") as f:
    json.dump(report, f, indent=1)
  with tf.io.gfile.GFile(os.path.join(out, "robustness.md"), "w") as f:
    f.write(markdown(report) + "\n")
  scalars = {"top1": report["top1"]}
  if "calibration" in report:
    bins = report["calibration"]["bins"]
    edges = np.linspace(0, 1, len(bins["count"]) + 1)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.bar(edges[:-1], bins["accuracy"], width=edges[1] - edges[0], align="edge", edgecolor="k", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['method']} {report['head']}: ECE {report['calibration']['ece']:.2f}%")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "reliability.png"), dpi=120)
    plt.close(fig)
    scalars |= {f"calibration/{k}": report["calibration"][k] for k in ("ece", "nll", "brier")}
  if "fgsm" in report:
    scalars["fgsm/top1"] = report["fgsm"]["top1"]
  if "occlusion" in report:
    occlusion = report["occlusion"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(occlusion["sizes"], occlusion["top1"], "o-")
    ax.set_xlabel("occluded square side (pixels)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['method']} {report['head']}: occlusion")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "occlusion.png"), dpi=120)
    plt.close(fig)
    scalars |= {f"occlusion/{s}": t for s, t in zip(occlusion["sizes"], occlusion["top1"], strict=True)}
  writer = tf.summary.create_file_writer(os.path.join(out, "tensorboard"))
  with writer.as_default():
    for name, value in scalars.items():
      tf.summary.scalar(f"robustness/{name}", value, step=report["step"])
  writer.close()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.evaluate", description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True, help="the run's workdir (with checkpoints/)")
  parser.add_argument("--suite", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
  parser.add_argument("--head", default="auto", help="<online|ema>/<head>; auto: the run's reported head")
  parser.add_argument("--fgsm_eps", type=float, default=8 / 255, help="FGSM step (pixel units for pixel space)")
  parser.add_argument("--fgsm_space", default="pixel", help=f"one of {', '.join(robustness.FGSM_SPACES)}")
  parser.add_argument("--occlusion_sizes", default="0,4,8,12,16", help="sides of the zeroed squares")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  args = parser.parse_args(argv)
  from absl import logging

  logging.set_verbosity(logging.ERROR)  # Orbax warns that a read-only manager will not save: it will not.
  try:
    sizes = tuple(int(s) for s in args.occlusion_sizes.split(","))
    report = evaluate_run(
      args.workdir, tuple(args.suite.split(",")), args.head, args.fgsm_eps, args.fgsm_space, sizes, args.step
    )
  except (EvaluationError, FileNotFoundError, ValueError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  print(markdown(report))
  print(f"Written to {os.path.join(args.workdir, 'robustness')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
