"""PuzzleMix's mixing (Kim et al., ICML 2020, as OpenMixup runs it): a block mask from a graph cut over
saliency and local smoothness, and an optimal-transport move of each image's salient blocks under its mask.

All of it is jittable and runs on the device (the reference cuts on the host with GCO):

    blocks = 2 ** k                                      # k drawn per step: 2, 4 or 8 blocks a side
    mask = block_mask(saliency, images_01, perm, lam, blocks, options)     # [B, blocks, blocks] in [0, 1]
    own = transport(images, transport_plan(mask, unary(saliency, blocks), options.transport_eps), blocks)
    partner = transport(images[perm], transport_plan(1 - mask, unary(saliency, blocks)[perm], ...), blocks)
    mixed = up(mask) * own + (1 - up(mask)) * partner    # lam of each example: the mean of its mask

`saliency` is [B, H, W]: the root mean square over the channels of the loss's gradient with respect to the
input (`methods.PuzzleMix` computes it). Images are [B, H, W, C], square, H divisible by the blocks.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import graph_cut
from adamix_jax.config import ConfigError
from adamix_jax.options import Options, each, non_negative, one_of, option, positive

REFERENCE_STD = {"small": (0.2023, 0.1994, 0.2010), "large": (0.229, 0.224, 0.225)}  # Below / from 64 px.


def _block_counts(counts) -> str | None:
  """Powers of two the graph cut can take (at most graph_cut.MAX_WIDTH blocks a side)."""
  good = counts and all(isinstance(c, int) and 2 <= c <= graph_cut.MAX_WIDTH and c & (c - 1) == 0 for c in counts)
  return None if good else f"must be powers of two from 2 to {graph_cut.MAX_WIDTH}, e.g. (2, 4, 8)"


@dataclasses.dataclass(frozen=True)
class PuzzleOptions(Options):
  """`config.puzzlemix`: the reference's settings (OpenMixup's `puzzlemix` defaults for CIFAR).

  Attributes:
    blocks: the mask's blocks per side, one drawn uniformly per step (the reference's block_num=4: 2, 4, 8).
    beta: label smoothness: the weight of a mask change between neighbouring blocks (divided by blocks × 16).
    gamma: data smoothness: the weight of the image difference across a block border.
    eta: the weight of the prior that pulls the mask's mean towards lam.
    neigh_size: the side of the pixel neighbourhoods whose means are compared across a border.
    n_labels: mask values 0, 1/(n-1), ..., 1 (2 or 3).
    transport: move each image's salient blocks under its mask (optimal transport) before mixing.
    transport_eps: the transport cost's weight against the saliency moved.
    pixel_std: the per-channel std that takes normalised images back to pixels for the smoothness term; ()
      is the reference's constant (CIFAR-10's below 64 pixels, ImageNet's above: 3 channels only).
  """

  section = "puzzlemix"
  blocks: tuple[int, ...] = option("blocks", _block_counts)
  beta: float = option("beta", non_negative)
  gamma: float = option("gamma", non_negative)
  eta: float = option("eta", non_negative)
  neigh_size: int = option("neigh_size", positive)
  n_labels: int = option("n_labels", one_of(2, 3))
  transport: bool = option("transport")
  transport_eps: float = option("transport_eps", non_negative)
  pixel_std: tuple[float, ...] = option("pixel_std", each(positive))

  def std(self, size: int, channels: int) -> tuple[float, ...]:
    """The std of images size × size with `channels`; ConfigError where the reference's has no value."""
    if self.pixel_std:
      if len(self.pixel_std) != channels:
        raise ConfigError(f"config.puzzlemix.pixel_std has {len(self.pixel_std)} values for {channels} channels.")
      return self.pixel_std
    if channels != 3:
      raise ConfigError(
        f"config.puzzlemix.pixel_std = () is the reference's colour statistics; these images have {channels} "
        "channel(s): set it to the data's per-channel std, e.g. --config.puzzlemix.pixel_std='(0.353,)'."
      )
    return REFERENCE_STD["small" if size < 64 else "large"]

  def check_size(self, size: int) -> None:
    """ConfigError unless every block count divides the image side and the neighbourhoods tile each block."""
    bad = [b for b in self.blocks if size % b]
    if bad:
      raise ConfigError(
        f"config.puzzlemix.blocks = {self.blocks} has {bad}, which do not divide the {size}-pixel images; "
        f"use counts that divide {size}."
      )
    untiled = [b for b in self.blocks if (size // b) % min(self.neigh_size, size // b)]
    if untiled:
      raise ConfigError(
        f"config.puzzlemix.neigh_size = {self.neigh_size} does not tile the blocks of {size // untiled[0]} pixels "
        f"({untiled[0]} blocks a side); use a neighbourhood side that divides every block's side."
      )


def _pool(x: jax.Array, size_h: int, size_w: int) -> jax.Array:
  """Mean over non-overlapping size_h × size_w windows of the last two axes (truncating, as avg_pool2d)."""
  *lead, height, width = x.shape
  rows, cols = height // size_h, width // size_w
  x = x[..., : rows * size_h, : cols * size_w]
  return x.reshape(*lead, rows, size_h, cols, size_w).mean(axis=(-3, -1))


def unary(saliency: jax.Array, blocks: int) -> jax.Array:
  """float32 [B, blocks, blocks]: each block's share of its image's saliency (summing to 1 per image)."""
  pooled = _pool(saliency, saliency.shape[1] // blocks, saliency.shape[2] // blocks)
  return pooled / pooled.sum(axis=(1, 2), keepdims=True)


def _border_differences(a: jax.Array, b: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """Mean absolute differences across the block borders between neighbourhood means a and b [B, C, n, n]:
  vertical [B, blocks - 1, blocks] (a's row above, b's row below) and horizontal [B, blocks, blocks - 1]."""
  vertical = jnp.abs(a[:, :, :-1, :] - b[:, :, 1:, :])[:, :, k - 1 :: k, :].mean(1)
  horizontal = jnp.abs(a[:, :, :, :-1] - b[:, :, :, 1:])[:, :, :, k - 1 :: k].mean(1)
  return _pool(vertical, 1, k), _pool(horizontal, k, 1)


def block_mask(
  saliency: jax.Array, pixels: jax.Array, permutation: jax.Array, lam: jax.Array, blocks: int, options: PuzzleOptions
) -> jax.Array:
  """The graph-cut mask of each example: the weight of its own image in each block.

  Args:
    saliency: float32 [B, H, W], non-negative.
    pixels: float32 [B, H, W, C], the images in pixel units (the data-smoothness term compares them).
    permutation: int [B], each example's partner.
    lam: float32 scalar, the mask's prior mean (the reference's `alpha`, drawn from Beta(alpha, alpha)).
    blocks: blocks per side (static), dividing H.
    options: the reference's weights.

  Returns:
    float32 [B, blocks, blocks] with values in {0, 1/(n-1), ..., 1}.
  """
  block_size = saliency.shape[1] // blocks
  neigh = min(options.neigh_size, block_size)
  k = block_size // neigh
  beta = options.beta / blocks / 16
  own_unary = unary(saliency, blocks)
  partner_unary = own_unary[permutation]
  own_pool = _pool(jnp.moveaxis(pixels, -1, 1), neigh, neigh)  # [B, C, H / neigh, W / neigh]
  partner_pool = own_pool[permutation]
  # Border terms of the four label pairs: (partner, partner), (partner, own), (own, partner), (own, own).
  pairs = {
    (0, 0): _border_differences(partner_pool, partner_pool, k),
    (0, 1): _border_differences(partner_pool, own_pool, k),
    (1, 0): _border_differences(own_pool, partner_pool, k),
    (1, 1): _border_differences(own_pool, own_pool, k),
  }
  vx = {key: beta * options.gamma * value[0] for key, value in pairs.items()}
  hy = {key: beta * options.gamma * value[1] for key, value in pairs.items()}
  # Fold the label-independent parts of the border terms into the unary costs, as the reference does.
  own, partner = own_unary, partner_unary
  partner = partner.at[:, :-1, :].add((vx[1, 0] + vx[1, 1]) / 2).at[:, 1:, :].add((vx[0, 1] + vx[1, 1]) / 2)
  own = own.at[:, :-1, :].add((vx[0, 1] + vx[0, 0]) / 2).at[:, 1:, :].add((vx[1, 0] + vx[0, 0]) / 2)
  partner = partner.at[:, :, :-1].add((hy[1, 0] + hy[1, 1]) / 2).at[:, :, 1:].add((hy[0, 1] + hy[1, 1]) / 2)
  own = own.at[:, :, :-1].add((hy[0, 1] + hy[0, 0]) / 2).at[:, :, 1:].add((hy[1, 0] + hy[0, 0]) / 2)
  weight_v = (vx[1, 0] + vx[0, 1] - vx[1, 1] - vx[0, 0]) / 2
  weight_h = (hy[1, 0] + hy[0, 1] - hy[1, 1] - hy[0, 0]) / 2

  # The reference's energy: integers after scaling by 1000 blocks², label i mixes the two unaries with
  # weight i / (n - 1) on `own`, plus a binomial prior around lam.
  n = options.n_labels
  scale = 1000.0 * blocks**2
  weights = jnp.linspace(0.0, 1.0, n)
  eps = 1e-8
  prior = {
    2: lambda a: jnp.stack([-jnp.log(a + eps), -jnp.log(1 - a + eps)]),
    3: lambda a: jnp.stack([-jnp.log(a**2 + eps), -jnp.log(2 * a * (1 - a) + eps), -jnp.log((1 - a) ** 2 + eps)]),
  }[n](lam)
  prior = options.eta * prior / blocks**2
  costs = (1 - weights) * partner[..., None] + weights * own[..., None] + prior
  # The label cost (i - j)^2 / (n - 1)^2 in integers: it and the unary costs times (n - 1)^2 (E times it).
  costs = jnp.trunc(scale * costs).astype(jnp.int32) * (n - 1) ** 2
  weight_v = jnp.maximum(jnp.trunc(scale * (weight_v + beta)), 0).astype(jnp.int32)
  weight_h = jnp.maximum(jnp.trunc(scale * (weight_h + beta)), 0).astype(jnp.int32)
  label_cost = (jnp.arange(n)[:, None] - jnp.arange(n)[None, :]) ** 2
  labels = jax.vmap(graph_cut.swap_labelling, in_axes=(0, 0, 0, None))(costs, weight_v, weight_h, label_cost)
  return 1.0 - labels / (n - 1)


def transport_plan(mask: jax.Array, saliency_blocks: jax.Array, eps: float) -> jax.Array:
  """Where each block of an image moves: the reference's greedy assignment of salient blocks to the mask.

  Args:
    mask: float32 [B, n, n]; the image is kept where it is positive.
    saliency_blocks: float32 [B, n, n], the image's `unary`.
    eps: the weight of the squared distance moved (normalised by (n - 1)²) against the saliency placed.

  Returns:
    float32 [B, n², n²], plan[b, i, j] = 1 where block i moves to block j (row-major block indices); a block
    that loses every contest for a place is dropped (its row is zero), as in the reference.
  """
  n = mask.shape[-1]
  rows, cols = jnp.divmod(jnp.arange(n * n), n)
  distance = ((rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2) / (n - 1) ** 2
  kept = (mask > 0).astype(jnp.float32).reshape(-1, 1, n * n)
  cost = eps * distance[None] - saliency_blocks.reshape(-1, n * n, 1) * kept

  def contest(_, carry):
    cost, _ = carry
    plan = jax.nn.one_hot(jnp.argmin(cost, axis=-1), n * n)  # Each block's best place.
    winners = jax.nn.one_hot(jnp.argmin(plan * cost, axis=-2), n * n, axis=-2) * plan  # Each place's best block.
    return cost + (1 - winners) * plan, winners

  _, plan = jax.lax.fori_loop(0, n, contest, (cost, jnp.zeros_like(cost)))
  return plan


def transport(images: jax.Array, plan: jax.Array, blocks: int) -> jax.Array:
  """Moves the blocks of images [B, H, W, C] by plan [B, n², n²] (block i to j where plan[i, j] = 1)."""
  batch, height, width, channels = images.shape
  size = height // blocks
  patches = images.reshape(batch, blocks, size, blocks, size, channels).transpose(0, 1, 3, 2, 4, 5)
  patches = patches.reshape(batch, blocks * blocks, size, size, channels)
  moved = jnp.einsum("bij,bipqc->bjpqc", plan, patches)
  moved = moved.reshape(batch, blocks, blocks, size, size, channels).transpose(0, 1, 3, 2, 4, 5)
  return moved.reshape(batch, height, width, channels)
