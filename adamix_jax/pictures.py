"""Pictures of mixing: a grid of mixed samples over their masks, for notebooks, TensorBoard and tests.

mixed = mixing.cutmix(normalize(images, mean, std), labels, plan)
grid = mixed_sample_grid(mixed, mean, std)   # uint8 [2 H, count W, 3]

previewer = make_previewer(method, nets, info, seed)   # a method's mixing with a state's networks
grid, mixed = render(previewer, state, images, labels, info)
"""

import jax
import numpy as np

from adamix_jax.images import denormalize, normalize
from adamix_jax.mixing import MixResult
from adamix_jax.sharding import local_replica


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


def class_label(index: int, class_names) -> str:
  """The name of label `index`, or its number where the dataset names no classes."""
  return class_names[index] if index < len(class_names) else str(index)


def save_mixing_figure(mixed: MixResult, mean, std, file, title: str, class_names=(), count: int = 8) -> None:
  """A labelled PNG of the first `count` mixed samples: each column one sample, the mixed image on top and
  below it each source's mask (white = weight 1), titled with the source's class and its weight lambda.

  Args:
    mixed: a MixResult on the host, masks [B, H, W, K] (K = 1 for the static mixups: the first source's
      weight; the second source's is 1 minus it).
    mean, std: the normalisation of the images.
    file: a path or a binary file object to write the PNG to.
    title: the figure's title (method, step, run).
    class_names: the name of each label (default: the label's number).
  """
  from matplotlib.figure import Figure  # Not pyplot: no backend is switched, a notebook's plots keep working.

  count = min(count, mixed.images.shape[0])
  images = denormalize(mixed.images[:count], mean, std)
  masks = np.asarray(mixed.masks[:count], np.float32)
  labels, lams = np.asarray(mixed.labels), np.asarray(mixed.lams)
  sources = masks.shape[-1]
  fig = Figure(figsize=(1.9 * count, 2.2 * (1 + sources)), layout="constrained")
  axes = fig.subplots(1 + sources, count, squeeze=False)
  for column in range(count):
    described = " + ".join(
      f"{lams[i, column]:.2f} {class_label(int(labels[i, column]), class_names)}" for i in range(labels.shape[0])
    )
    axes[0, column].imshow(images[column].squeeze(-1) if images.shape[-1] == 1 else images[column], cmap="gray")
    axes[0, column].set_title(described.replace(" + ", "\n+ "), fontsize=7)
    for source in range(sources):
      axes[1 + source, column].imshow(masks[column, ..., source], cmap="gray", vmin=0, vmax=1)
      name = class_label(int(labels[source, column]), class_names)
      axes[1 + source, column].set_title(f"mask of {name} (λ {lams[source, column]:.2f})", fontsize=7)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(title, fontsize=10)
  fig.savefig(file, format="png", dpi=100)


def make_previewer(method, nets, info, seed: int):
  """A jitted (state, uint8 images [k, H, W, C], labels [k]) -> MixResult or None: `method`'s mixing of the
  images (normalised with `info`'s mean and std) with a state's networks, under the fixed key of `seed`."""
  key = jax.random.key(seed)

  def preview(state, images, labels):
    return method.preview(nets, state, normalize(images, info.mean, info.std), labels, key)

  return jax.jit(preview)


def render(previewer, state, images: np.ndarray, labels: np.ndarray, info):
  """(uint8 grid [(1 + K) H, k W, 3], MixResult on the host) of the state's mixing, or None if it mixes nothing.

  `info`: the data's DataInfo (its mean and std undo the normalisation)."""
  result = previewer(local_replica(state), images, labels)
  if result is None:
    return None
  result = MixResult(*jax.device_get(tuple(result)))
  return mixed_sample_grid(result, info.mean, info.std, count=len(images)), result
