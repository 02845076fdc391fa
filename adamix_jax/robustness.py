"""Robustness and calibration measures (the suites of `python -m adamix_jax.tools.evaluate`).

    calibration_counts(probs, labels)      -> sums over a batch, added over batches (padding weighted 0)
    calibration_report(counts)             -> ECE (15 equal-width bins), NLL, Brier score, reliability bins
    fgsm(loss_fn, images, labels, eps)     -> one signed-gradient step of size eps in pixel space
    occlude(images, size, key)             -> a size x size square of zeros at a random place per image
    make_robustness_step(...)              -> every asked suite's counts of one batch, jitted and sharded
    mean_corruption_error(report, baseline) -> the mCE of a corruption report against a baseline run's

Images here are float in [0, 1] ([B, H, W, C]); the model sees them normalised (`images.normalize`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from adamix_jax import losses
from adamix_jax.sharding import AXIS

FGSM_SPACES = ("pixel", "normalized")
NUM_BINS = 15


def calibration_counts(
  probs: jax.Array, labels: jax.Array, weights: jax.Array, num_bins: int = NUM_BINS
) -> dict[str, jax.Array]:
  """Per-bin and total sums of one batch, to be added over batches and turned into a report.

  Args:
    probs: [B, C] predicted probabilities.
    labels: int [B].
    weights: [B], 1 for real examples and 0 for padding.
    num_bins: equal-width confidence bins over [0, 1]; bin k holds confidences in (k/n, (k+1)/n] (bin 0
      also holds 0).

  Returns:
    {"count", "nll", "brier": scalars; "bin_count", "bin_confidence", "bin_correct": [num_bins] sums}.
  """
  probs = probs.astype(jnp.float32)
  confidence, predicted = jnp.max(probs, axis=-1), jnp.argmax(probs, axis=-1)
  correct = (predicted == labels).astype(jnp.float32)
  bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  onehot_bins = jax.nn.one_hot(bins, num_bins) * weights[:, None]
  picked = jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]
  brier = jnp.sum((probs - jax.nn.one_hot(labels, probs.shape[-1])) ** 2, axis=-1)
  return {
    "count": jnp.sum(weights),
    "nll": jnp.sum(-jnp.log(jnp.maximum(picked, 1e-12)) * weights),
    "brier": jnp.sum(brier * weights),
    "bin_count": jnp.sum(onehot_bins, axis=0),
    "bin_confidence": jnp.sum(onehot_bins * confidence[:, None], axis=0),
    "bin_correct": jnp.sum(onehot_bins * correct[:, None], axis=0),
  }


def calibration_report(counts: dict[str, np.ndarray]) -> dict:
  """ECE (%), NLL, Brier score and the reliability diagram's bins from summed `calibration_counts`.

  ECE = sum_k n_k / N `|accuracy_k - confidence_k|`, over the non-empty bins. The Brier score is the
  multi-class one: the mean over examples of sum_c (p_c - [c = y])^2 (0 best, 2 worst).
  """
  counts = {key: np.asarray(value, np.float64) for key, value in counts.items()}
  total, per_bin = counts["count"], counts["bin_count"]
  safe = np.maximum(per_bin, 1)
  accuracy, confidence = counts["bin_correct"] / safe, counts["bin_confidence"] / safe
  ece = float(np.sum(per_bin / total * np.abs(accuracy - confidence)))
  return {
    "ece": 100 * ece,
    "nll": float(counts["nll"] / total),
    "brier": float(counts["brier"] / total),
    "bins": {
      "count": per_bin.astype(int).tolist(),
      "accuracy": accuracy.tolist(),
      "confidence": confidence.tolist(),
    },
  }


def fgsm(
  loss_fn: Callable[[jax.Array], jax.Array],
  images: jax.Array,
  eps: float,
  *,
  space: str = "pixel",
  mean=None,
  std=None,
) -> jax.Array:
  """One FGSM step against `loss_fn`, returning the attacked images as the model sees them (normalised).

  Args:
    loss_fn: normalised images [B, H, W, C] -> the loss to increase (summed over the batch, so each
      example's gradient is its own).
    images: float [B, H, W, C] in [0, 1].
    eps: the step, in [0, 1] pixel units for "pixel" (8/255 is the usual one).
    space: "pixel": x' = clip(x + eps sign(grad_x), 0, 1), then normalised; "normalized" (the official
      code's): the normalised tensor moves by eps sign(grad), unclipped.
    mean, std: per-channel normalisation.
  """
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  if space == "pixel":
    grad = jax.grad(lambda x: loss_fn((x - mean) / std))(images)
    return (jnp.clip(images + eps * jnp.sign(grad), 0.0, 1.0) - mean) / std
  if space == "normalized":
    normalized = (images - mean) / std
    return normalized + eps * jnp.sign(jax.grad(loss_fn)(normalized))
  raise ValueError(f"space = {space!r} is not known. Valid choices: {', '.join(FGSM_SPACES)}.")


def pgd(
  loss_fn: Callable[[jax.Array], jax.Array],
  images: jax.Array,
  eps: float,
  steps: int,
  step_size: float,
  key: jax.Array,
  *,
  mean=None,
  std=None,
) -> jax.Array:
  """PGD-`steps` in pixel space (Madry et al.): a uniform random start in the eps-ball, then `steps` signed
  gradient steps of `step_size`, each projected back onto the eps-ball around `images` and onto [0, 1].

  Args:
    loss_fn, mean, std: as `fgsm`.
    images: float [B, H, W, C] in [0, 1].
    eps, step_size: in [0, 1] pixel units (8/255 and 2/255 are the usual ones).
    key: draws the random start.

  Returns:
    The attacked images, normalised.
  """
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  grad_fn = jax.grad(lambda x: loss_fn((x - mean) / std))

  def project(x):
    return jnp.clip(jnp.clip(x, images - eps, images + eps), 0.0, 1.0)

  start = project(images + jax.random.uniform(key, images.shape, minval=-eps, maxval=eps))
  attacked = jax.lax.fori_loop(0, steps, lambda _, x: project(x + step_size * jnp.sign(grad_fn(x))), start)
  return (attacked - mean) / std


def occlude(images: jax.Array, size: int, key: jax.Array) -> jax.Array:
  """Each image with a size x size square set to 0 at a uniformly drawn place (fully inside the image).

  Args:
    images: [B, H, W, C] in [0, 1]; size 0 returns them unchanged.
    key: draws the squares' corners.
  """
  if size == 0:
    return images
  batch, height, width, _ = images.shape
  top_key, left_key = jax.random.split(key)
  top = jax.random.randint(top_key, (batch, 1, 1), 0, height - size + 1)
  left = jax.random.randint(left_key, (batch, 1, 1), 0, width - size + 1)
  rows, cols = jnp.arange(height)[None, :, None], jnp.arange(width)[None, None, :]
  square = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
  return jnp.where(square[..., None], 0.0, images)


def make_robustness_step(
  nets, info, mesh, head: str, suites, eps: float, space: str, sizes: tuple[int, ...], pgd_steps: int = 10
):
  """A jitted (state, batch, key) -> every suite's counts of one batch, summed over the devices.

  Args:
    nets: the run's networks (its classifier is evaluated).
    info: the data's DataInfo (mean, std: the model sees normalised pixels).
    mesh: the ('data',) mesh the batch is sharded over.
    head: "<online|ema>/<head>": the network (`TrainState.variables`) and head evaluated.
    suites: which of calibration, fgsm, pgd, occlusion to count (the clean top-1 always).
    eps, space: FGSM's step and space; eps is also PGD's radius.
    sizes: the occlusion squares' sides.
    pgd_steps: PGD's iterations.

  The batch is {"images": uint8 [B, H, W, C], "labels": int [B], "mask": bool [B]} (padding not counted).
  """
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
      counts["calibration"] = calibration_counts(jax.nn.softmax(clean), labels, weights)
    if "fgsm" in suites:
      attacked = fgsm(summed_loss, pixels, eps, space=space, mean=info.mean, std=info.std)
      counts["fgsm_correct"] = correct(logits_of(attacked))
      counts["fgsm_loss"] = summed_loss(attacked)
      counts["clean_loss"] = summed_loss((pixels - mean) / std)
    if "pgd" in suites:
      attacked = pgd(
        summed_loss, pixels, eps, pgd_steps, eps / 4, jax.random.fold_in(key, 1), mean=info.mean, std=info.std
      )
      counts["pgd_correct"] = correct(logits_of(attacked))
    if "occlusion" in suites:
      keys = jax.random.split(key, len(sizes))
      occluded = [occlude(pixels, size, k) for size, k in zip(sizes, keys, strict=True)]
      counts["occlusion_correct"] = jnp.stack([correct(logits_of((x - mean) / std)) for x in occluded])
    return lax.psum(counts, AXIS)

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P()), out_specs=P())
  return jax.jit(step)


def mean_corruption_error(report: dict, baseline: dict) -> dict:
  """mCE against a baseline's corruption report: CE_c = sum_s err(c, s) / sum_s err_baseline(c, s) for each
  corruption c both have, mCE = their mean, in % (Hendrycks & Dietterich, with a run as the baseline)."""
  shared = [name for name in report["top1"] if name in baseline["top1"]]
  ce = {
    name: 100 * sum(100 - t for t in report["top1"][name]) / sum(100 - t for t in baseline["top1"][name])
    for name in shared
  }
  return {"ce": ce, "mce": float(np.mean(list(ce.values()))), "baseline_set": baseline["set"]}
