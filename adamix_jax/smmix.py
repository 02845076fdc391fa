"""SMMix's mixing (Chen et al., ICCV 2023, as OpenMixup's `smmix` runs it; docs/method.md#smmix).

On a ViT's s x s token grid, with the class token's attention to each patch (last block, mean over heads):
each image i gives up the r x r square of patches its attention sums lowest over (stride 1, the first in
row-major order on ties) and receives, patch for patch, the r x r square that its partner, the image at the
mirrored position B - 1 - i of the batch, attends to most. The side r is drawn per batch uniformly from
floor(s * min_side_ratio) .. floor(s * max_side_ratio), and the image keeps the label weight
lam = 1 - r^2 / s^2.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import mixing
from adamix_jax.options import Options, option, ordered_range, unit_interval


@dataclasses.dataclass(frozen=True)
class SMMixOptions(Options):
  """`config.smmix`: the squares' sides and how often SMMix runs rather than MixUp."""

  section = "smmix"
  side_ratios: tuple[float, float] = option("side_ratios", ordered_range())  # Square sides, as shares of the grid's.
  prob: float = option("prob", unit_interval)  # Share of the steps that run SMMix; the rest MixUp (mixup.alpha).


def square_sides(grid: int, side_ratios: tuple[float, float]) -> tuple[int, ...]:
  """The sides r the draw picks from on a `grid` x `grid` token grid (at least 1)."""
  low, high = int(grid * side_ratios[0]), int(grid * side_ratios[1])
  return tuple(range(max(low, 1), max(high, 1) + 1))


def window_sums(attention: jax.Array, side: int) -> jax.Array:
  """[B, s, s] -> [B, s - side + 1, s - side + 1]: the attention summed over each side x side square."""
  ones = jnp.ones((side, side, 1, 1), attention.dtype)
  summed = jax.lax.conv_general_dilated(
    attention[..., None], ones, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  return summed[..., 0]


def paste_squares(images: jax.Array, attention: jax.Array, side: int) -> tuple[jax.Array, jax.Array]:
  """Images [B, H, W, C] with each one's least attended side x side square of patches replaced by the most
  attended one of image B - 1 - i; `attention` [B, s, s] (H, W multiples of s). Returns (mixed images,
  the own-pixel mask [B, H, W, 1])."""
  batch, height, width, channels = images.shape
  grid = attention.shape[1]
  patch = height // grid
  sums = window_sums(attention.astype(jnp.float32), side).reshape(batch, -1)
  positions = grid - side + 1
  low, high = jnp.argmin(sums, axis=1), jnp.argmax(sums, axis=1)[::-1]  # high[i]: the partner B - 1 - i's.

  def one(own, partner, low, high):
    source = (high // positions * patch, high % positions * patch, 0)
    target = (low // positions * patch, low % positions * patch, 0)
    square = jax.lax.dynamic_slice(partner, source, (side * patch, side * patch, channels))
    mask = jax.lax.dynamic_update_slice(
      jnp.ones((height, width, 1), jnp.float32), jnp.zeros((side * patch,) * 2 + (1,)), target
    )
    return jax.lax.dynamic_update_slice(own, square, target), mask

  return jax.vmap(one)(images, images[::-1], low, high)


def mix(images: jax.Array, labels: jax.Array, attention: jax.Array, key: jax.Array, sides: tuple[int, ...]):
  """SMMix of images [B, H, W, C] (labels [B]) by the class token's attention [B, s, s]; the square's side is
  drawn from `sides` with `key` (a compiled branch each). Returns a MixResult."""

  def branch(side):
    return lambda: paste_squares(images, attention, side)

  choice = jax.random.randint(key, (), 0, len(sides))
  mixed, mask = jax.lax.switch(choice, [branch(side) for side in sides])
  lam = jnp.mean(mask, axis=(1, 2, 3))  # 1 - side^2 / s^2 for every image.
  return mixing.MixResult(mixed, jnp.stack([labels, labels[::-1]]), jnp.stack([lam, 1 - lam]), mask)
