"""AttentiveMix+'s mask (Walawalkar et al., ICASSP 2020, as OpenMixup's `attentivemix` runs it;
docs/method.md#attentivemix).

A fixed, pretrained network looks at each image; the channel mean of its last feature map is an attention
grid [h, w]. The image keeps its k most attended cells and takes the rest from its partner:

    k = min(max(1, floor(h w lam)), h w)   (AttentiveMix+, lam ~ Beta(alpha, alpha); a fixed k: the original)

The cell mask is upsampled to the image by PyTorch's nearest rule (output pixel i reads cell
floor(i h / H)), so cells cover floor or ceil of H / h pixels when h does not divide H. The label weight of
the image is the share of the *first* image's mask, for the whole batch (the reference's).
"""

import dataclasses
import os

import jax
import jax.numpy as jnp

from adamix_jax import mixing
from adamix_jax.options import Options, non_negative, one_of, option

# The frozen networks it can read from torchvision weights (their ImageNet stems).
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnext50_32x4d")


def _network_source(path: str) -> str | None:
  if path and (os.path.isfile(path) or os.path.isdir(os.path.join(path, "checkpoints"))):
    return None
  return (
    "must name the network whose attention picks the cells: an .npz of torchvision ResNet weights "
    "(adamix_jax/models/pretrained.py says how to convert a .pth), or the workdir of a run of this library"
  )


def _integer(value) -> str | None:
  return None if isinstance(value, int) else "must be an integer"


@dataclasses.dataclass(frozen=True)
class AttentiveMixOptions(Options):
  """`config.attentivemix`: the network that attends, at what input size, and how many cells are kept."""

  section = "attentivemix"
  pretrained: str = option("pretrained", _network_source)  # torchvision .npz, or a workdir of ours.
  backbone: str = option("backbone", one_of(BACKBONES))  # The .npz's architecture (a workdir names its own).
  input_size: int = option("input_size", _integer, non_negative)  # Images resized to this for it; 0: as they are.
  top_k: int = option("top_k", _integer, non_negative)  # Cells kept; 0: floor(cells x lam) (AttentiveMix+).


def kept_cells(lam: jax.Array, cells: int, top_k: int = 0) -> jax.Array:
  """How many cells the image keeps: `top_k`, or for 0 floor(cells * lam) clipped to [1, cells] (int32 [])."""
  if top_k:
    return jnp.int32(min(top_k, cells))
  return jnp.clip(jnp.floor(cells * lam.astype(jnp.float32)).astype(jnp.int32), 1, cells)


def cell_mask(attention: jax.Array, count: jax.Array) -> jax.Array:
  """float32 [B, h, w]: 1 on each image's `count` most attended cells of `attention` [B, h, w], else 0."""
  batch, height, width = attention.shape
  flat = attention.reshape(batch, height * width)
  ranks = jnp.argsort(jnp.argsort(-flat, axis=-1, stable=True), axis=-1)  # 0: the most attended.
  return (ranks < count).astype(jnp.float32).reshape(batch, height, width)


def upsample_nearest(mask: jax.Array, height: int, width: int) -> jax.Array:
  """[B, h, w] -> [B, height, width] by PyTorch's nearest rule: output row i reads row floor(i h / height)."""
  rows = jnp.arange(height) * mask.shape[1] // height
  cols = jnp.arange(width) * mask.shape[2] // width
  return mask[:, rows][:, :, cols]


def mix(images: jax.Array, labels: jax.Array, features: jax.Array, plan: mixing.MixPlan, top_k: int = 0):
  """AttentiveMix+ of images [B, H, W, C] (labels [B]) by the attention of `features` [B, h, w, c], the frozen
  network's last feature map of the same images; `plan` gives the partners and lam. Returns a MixResult."""
  attention = jnp.mean(features.astype(jnp.float32), axis=-1)
  cells = attention.shape[1] * attention.shape[2]
  mask = cell_mask(attention, kept_cells(plan.lam, cells, top_k))
  mask = upsample_nearest(mask, images.shape[1], images.shape[2])[..., None]
  mixed = (mask * images + (1 - mask) * images[plan.permutation]).astype(images.dtype)
  lam = jnp.full(labels.shape, jnp.mean(mask[0]))  # The first image's share, for all (the reference's).
  return mixing.MixResult(mixed, jnp.stack([labels, labels[plan.permutation]]), jnp.stack([lam, 1 - lam]), mask)
