"""numpy transcriptions of OpenMixup's GridMix and SmoothMix masks, the oracles of tests/test_mixing.py.

They follow `rand_grid` (openmixup/models/augments/gridmix.py) and `gaussian_kernel`
(openmixup/models/augments/smoothmix.py) at commit 37e1372 line by line, with the random draws passed in
(the reference draws them with numpy and torch): Python integers and slices included.
"""

import math

import numpy as np


def rand_grid(size, lam, n_holes, hole_aspect_ratio, cut_area_ratio, cut_aspect_ratio, cx, cy) -> np.ndarray:
  """The reference's mask [size, size] (1: the partner) for a square image."""
  W = H = size
  cut_area = int(H * W * cut_area_ratio)
  cut_w = int(np.sqrt(cut_area / cut_aspect_ratio))
  cut_h = int(cut_w * cut_aspect_ratio)
  xc1 = int((W - cut_w) * cx)
  yc1 = int((H - cut_h) * cy)
  width, height = cut_w, cut_h
  patch_width = math.ceil(width / n_holes)
  patch_height = int(patch_width * hole_aspect_ratio)
  ny = math.ceil(height / patch_height)
  ratio = np.sqrt(1 - lam)
  hole_width = min(max(int(patch_width * ratio), 1), patch_width - 1)
  hole_height = min(max(int(patch_height * ratio), 1), patch_height - 1)
  mask = np.zeros((W, H))
  for i in range(n_holes + 1):
    for j in range(ny + 1):
      x1 = min(patch_width * i, width)
      y1 = min(patch_height * j, height)
      x2 = min(x1 + hole_width, width)
      y2 = min(y1 + hole_height, height)
      mask[yc1 + y1 : yc1 + y2, xc1 + x1 : xc1 + x2] = 1.0
  return mask


def gaussian_kernel(kernel_size, rand_w, rand_h, sigma) -> np.ndarray:
  """The reference's kernel; it is called as gaussian_kernel(h, rand_h, rand_w, sigma)."""
  s = kernel_size * 2
  x_grid = np.tile(np.arange(s), s).reshape(s, s)
  y_grid = x_grid.T
  xy_grid = np.stack([x_grid, y_grid], axis=-1)
  xy_grid = np.roll(xy_grid, rand_w, 0)
  xy_grid = np.roll(xy_grid, rand_h, 1)
  crop_size = s // 4
  xy_grid = xy_grid[crop_size : s - crop_size, crop_size : s - crop_size]
  mean = (s - 1) / 2
  var = sigma**2
  return np.exp(-np.sum((xy_grid - mean) ** 2, axis=-1) / (2 * var)).reshape(kernel_size, kernel_size)
