"""Pictures of mixing: a grid of mixed samples over their masks, for notebooks, TensorBoard and tests.

mixed = mixing.cutmix(normalize(images, mean, std), labels, plan)
grid = mixed_sample_grid(mixed, mean, std)   # uint8 [2 H, count W, 3]
"""

import numpy as np

from adamix_jax.mixing import MixResult


def denormalize(images, mean, std) -> np.ndarray:
  """Normalised images [..., C] back to uint8 pixels, clipped to [0, 255]."""
  pixels = (np.asarray(images, np.float32) * np.asarray(std) + np.asarray(mean)) * 255.0
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def mixed_sample_grid(mixed: MixResult, mean, std, count: int = 8) -> np.ndarray:
  """The first `count` mixed images (top row) above their masks (bottom row, white = the unshuffled image).

  Args:
    mixed: a MixResult of normalised images [B, H, W, C] (C = 1 or 3).
    mean, std: the normalisation of the images.
    count: columns of the grid (at most B).

  Returns:
    uint8 [2 H, count W, 3]. The mask tiles' mean brightness is 255 * lams[0] of their column.
  """
  count = min(count, mixed.images.shape[0])
  images = denormalize(mixed.images[:count], mean, std)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  masks = np.clip(np.round(np.asarray(mixed.masks[:count], np.float32) * 255), 0, 255).astype(np.uint8)
  masks = np.repeat(masks, 3, axis=-1)
  top = np.concatenate(list(images), axis=1)
  bottom = np.concatenate(list(masks), axis=1)
  return np.concatenate([top, bottom], axis=0)
