"""Robustness and calibration measures as pure functions (the `python -m adamix_jax.evaluate` suites).

    calibration_counts(probs, labels)      -> sums over a batch, added over batches (padding weighted 0)
    calibration_report(counts)             -> ECE (15 equal-width bins), NLL, Brier score, reliability bins
    fgsm(loss_fn, images, labels, eps)     -> one signed-gradient step of size eps in pixel space
    occlude(images, size, key)             -> a size x size square of zeros at a random place per image

Images here are float in [0, 1] ([B, H, W, C]); the model sees them normalised (`images.normalize`).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

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

  ECE = sum_k n_k / N |accuracy_k - confidence_k|, over the non-empty bins. The Brier score is the
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
