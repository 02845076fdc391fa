"""Pictures of mixing: a grid of mixed samples over their masks, for notebooks, TensorBoard and tests.

mixed = mixing.cutmix(normalize(images, mean, std), labels, plan)
grid = mixed_sample_grid(mixed, mean, std)   # uint8 [2 H, count W, 3]
"""

import numpy as np

from adamix_jax.images import denormalize
from adamix_jax.mixing import MixResult


def mixed_sample_grid(mixed: MixResult, mean, std, count: int = 8) -> np.ndarray:
  """The first `count` mixed images (top row) above their masks (one grey row per mask channel).

  Args:
    mixed: a MixResult of normalised images [B, H, W, C] (C = 1 or 3) and masks [B, H, W, K].
    mean, std: the normalisation of the images.
    count: columns of the grid (at most B).

  Returns:
    uint8 [(1 + K) H, count W, 3]; white = weight 1. For the static mixups (K = 1) the mask row is the
    unshuffled image's weight, and a tile's mean brightness is 255 * lams[0] of its column.
  """
  count = min(count, mixed.images.shape[0])
  images = denormalize(mixed.images[:count], mean, std)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  masks = np.clip(np.round(np.asarray(mixed.masks[:count], np.float32) * 255), 0, 255).astype(np.uint8)
  rows = [np.concatenate(list(images), axis=1)]
  for channel in range(masks.shape[-1]):
    rows.append(np.repeat(np.concatenate(list(masks[..., channel : channel + 1]), axis=1), 3, axis=-1))
  return np.concatenate(rows, axis=0)
