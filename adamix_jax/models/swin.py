"""Swin Transformer backbone: windowed attention, shifted every other block, relative position bias,
patch merging between stages.

Swin-T (`swin_t`): 224² images, 4² patches, window 7, depths 2-2-6-2, widths 96-192-384-768 with 3-6-12-24
heads, MLP ratio 4, LayerNorm epsilon 1e-5; with a 1,000-class head it has timm's 28,288,354 parameters.

What the classifier and the generator read (`stages`), laid out as the official (mmcls) Swin that the
AdAutoMix config taps: each stage's blocks followed by its patch merging (stages 1-3), so the outputs are
[B, 28, 28, 192], [B, 14, 14, 384], [B, 7, 7, 768] and, last, stage 4 after the final LayerNorm
[B, 7, 7, 768], which the head averages. The generator reads index 2, "stage 3 after patch merging",
through a LayerNorm without parameters: the official backbone puts a LayerNorm on each tapped output, and
that norm's parameters never receive a gradient (only the EMA teacher's tap feeds the generator, and the
teacher is not trained), so they stay at scale 1 and bias 0.

Stages whose token grid is no larger than the window use one window covering the grid and no shift (as
the official code); larger grids must be a multiple of the window.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adamix_jax.models.layers import Init
from adamix_jax.models.transformer_layers import (
  LINEAR_INIT,
  DropPath,
  Mlp,
  SelfAttention,
  check_heads,
  dense,
  drop_path_rates,
  layer_norm,
  patch_embed,
)


def window_partition(x: jax.Array, window: int) -> jax.Array:
  """[B, H, W, C] -> [B * (H / window) * (W / window), window * window, C], windows in row-major order (a
  numpy array gives a numpy array)."""
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height // window, window, width // window, window, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: jax.Array, window: int, height: int, width: int) -> jax.Array:
  """The inverse of `window_partition`: [B * nW, window * window, C] -> [B, H, W, C]."""
  channels = windows.shape[-1]
  x = windows.reshape(-1, height // window, width // window, window, window, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window: int) -> np.ndarray:
  """[window², window²] index into the (2 window - 1)² bias table of the offset between two positions."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
  offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)  # [2, N, N], each in [0, 2 window - 2].
  return offsets[0] * (2 * window - 1) + offsets[1]


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
  """[nW, window², window²] additive mask: -100 between positions that the cyclic shift brought together
  from different regions of the image, 0 elsewhere."""
  regions = np.zeros((1, height, width, 1), np.float32)
  label = 0
  for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
    for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
      regions[:, rows, cols, :] = label
      label += 1
  labels = window_partition(regions, window)[..., 0]  # [nW, window²].
  return np.where(labels[:, None, :] != labels[:, :, None], -100.0, 0.0).astype(np.float32)


class WindowAttention(nn.Module):
  """Self-attention within each window, with a learned relative position bias per head."""

  window: int
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, windows: jax.Array, mask=None) -> jax.Array:
    """windows [B * nW, window², C] -> [B * nW, window², C]; `mask` [nW, window², window²] or None."""
    table = self.param(
      "relative_position_bias_table", LINEAR_INIT, ((2 * self.window - 1) ** 2, self.num_heads), jnp.float32
    )
    bias = table[relative_position_index(self.window)].transpose(2, 0, 1)  # [heads, N, N].
    return SelfAttention(self.num_heads, self.dtype, name="attn")(windows, bias=bias, mask=mask)


class ShiftedWindowAttention(nn.Module):
  """Window attention over a token grid, the windows displaced by `shift` (0: the regular partition).

  The grid is rolled by -shift, cut into windows, attended with the shifted-window mask, put back and
  rolled by +shift: each token attends to the tokens of its displaced window, windows cut at the border
  rather than wrapped around.
  """

  num_heads: int
  window: int
  shift: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C]."""
    _, height, width, _ = x.shape
    if self.shift:
      x = jnp.roll(x, (-self.shift, -self.shift), axis=(1, 2))
    mask = jnp.asarray(shifted_window_mask(height, width, self.window, self.shift)) if self.shift else None
    windows = WindowAttention(self.window, self.num_heads, self.dtype, name="window_attn")(
      window_partition(x, self.window), mask
    )
    x = window_reverse(windows, self.window, height, width)
    return jnp.roll(x, (self.shift, self.shift), axis=(1, 2)) if self.shift else x


class SwinBlock(nn.Module):
  """x + DropPath(W-MSA or SW-MSA(LN(x))), then x + DropPath(MLP(LN(x))), on the token grid [B, H, W, C]."""

  num_heads: int
  window: int
  shift: int
  drop_path: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C]."""
    y = layer_norm(1e-5, dtype=self.dtype, name="norm1")(x)
    y = ShiftedWindowAttention(self.num_heads, self.window, self.shift, self.dtype, name="attention")(y)
    x = x + DropPath(self.drop_path)(y, train=train)
    y = Mlp(4 * x.shape[-1], self.dtype, name="mlp")(layer_norm(1e-5, dtype=self.dtype, name="norm2")(x))
    return x + DropPath(self.drop_path)(y, train=train)


class PatchMerging(nn.Module):
  """2×2 neighbourhoods concatenated (4C), LayerNorm, linear to 2C without bias: [B, H, W, C] -> [B, H/2, W/2, 2C]."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
    x = layer_norm(1e-5, dtype=self.dtype, name="norm")(x)
    return dense(2 * channels, dtype=self.dtype, use_bias=False, name="reduction")(x)


def stage_windows(grid: int, window: int) -> tuple[int, bool]:
  """(window, shifted) of a stage whose token grid is grid × grid: one unshifted window over a grid no
  larger than the window."""
  return (grid, False) if grid <= window else (window, True)


class SwinTransformer(nn.Module):
  """Swin Transformer (v1).

  Attributes:
    patch: patch size of the embedding.
    width: channels of stage 1 (doubled at each merging).
    depths: blocks per stage.
    num_heads: attention heads per stage.
    window: attention window side.
    drop_path: stochastic-depth rate of the last block (linear from 0).
  """

  patch: int = 4
  width: int = 96
  depths: tuple[int, ...] = (2, 2, 6, 2)
  num_heads: tuple[int, ...] = (3, 6, 12, 24)
  window: int = 7
  drop_path: float = 0.0
  inits: Init = Init()
  axis_name: str | None = None  # No BatchNorm: accepted for a common backbone signature, unused.
  dtype: Any = jnp.float32

  def check_image_size(self, height: int, width: int) -> None:
    """Raises a one-line error unless every stage's grid is a multiple of the window (or fits in one), and
    every stage's width splits into its heads."""
    dims = tuple(self.width * 2**stage for stage in range(len(self.depths)))
    check_heads("SwinTransformer", dims, self.num_heads)
    valid = f"image sides that work with window {self.window}: multiples of {self.patch * self.window * 8}"
    if height != width:
      raise ValueError(f"SwinTransformer takes square images, got {height}x{width}.")
    if height % (self.patch * 2 ** (len(self.depths) - 1)):
      raise ValueError(
        f"SwinTransformer: image side {height} does not halve {len(self.depths) - 1} times after the "
        f"{self.patch}-pixel patches; {valid} (224 for Swin-T), or set config.model.window."
      )
    for stage in range(len(self.depths)):
      grid = height // self.patch // 2**stage
      if grid > self.window and grid % self.window:
        raise ValueError(
          f"SwinTransformer: image side {height} gives a {grid}x{grid} token grid at stage {stage + 1}, not a "
          f"multiple of the window {self.window}; {valid} (224 for Swin-T), or set config.model.window."
        )

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, stage_hook=None) -> tuple[jax.Array, ...]:
    """Maps images [B, H, W, C] to the stage outputs (module docstring)."""
    if stage_hook is not None:
      raise ValueError("SwinTransformer has no stage inputs to mix: ManifoldMix runs on the CNNs and ConvNeXt.")
    self.check_image_size(images.shape[1], images.shape[2])
    x = patch_embed(self.width, self.patch, dtype=self.dtype)(images.astype(self.dtype))
    x = layer_norm(1e-5, dtype=self.dtype, name="patch_norm")(x)
    rates = drop_path_rates(self.drop_path, self.depths)
    stages = []
    last = len(self.depths) - 1
    for stage, depth in enumerate(self.depths):
      window, shifts = stage_windows(x.shape[1], self.window)
      for index in range(depth):
        shift = window // 2 if shifts and index % 2 else 0
        x = SwinBlock(
          self.num_heads[stage], window, shift, rates[stage][index], self.dtype,
          name=f"stage{stage + 1}_block{index + 1}",
        )(x, train=train)  # fmt: skip
      if stage < last:
        x = PatchMerging(self.dtype, name=f"stage{stage + 1}_merge")(x)
        # The official tap's LayerNorm, whose parameters never train (module docstring): none here.
        tap = nn.LayerNorm(1e-5, use_scale=False, use_bias=False, dtype=self.dtype)(x) if stage == 2 else x
        stages.append(tap)
      else:
        stages.append(layer_norm(1e-5, dtype=self.dtype, name="norm")(x))
    return tuple(stages)
