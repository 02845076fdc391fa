"""Per-image preprocessing on the host, in numpy and PIL, as the official (torchvision) pipelines do it.

    view = View(options, size)                     # options: DataOptions (or a semi-supervised view of it)
    images = view.batch(images, rng, image_rngs)   # uint8 [B, H, W, C] or B encoded images -> uint8 [B, S, S, C]
    image = eval_image(image, size, resize_to, method, channels)

Training: "crop_flip" (CIFAR: random crop after reflect padding, horizontal flip; on images held in memory
this runs on the whole batch at once) or "random_resized_crop" (torchvision's RandomResizedCrop: area
scale and log-uniform aspect ratio, ten tries then a centre crop, resized with PIL's antialiasing, then a
horizontal flip). Evaluation: resize the shorter side, centre crop. Either can be followed by RandAugment
and Cutout (`rand_augment.py`). Every random choice comes from the generators passed in (crops and flips
drawn for the whole batch at once, RandAugment and Cutout per image), so the stream is a pure function of
the seeds the pipeline derives from (seed, epoch, position).
"""

import math

import numpy as np
from PIL import Image

from adamix_jax.data import decoding, rand_augment
from adamix_jax.data.options import DataOptions

_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect-ratio range.
_TRIES = 10
_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def resize(image: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
  """uint8 [h, w, C] -> uint8 [height, width, C] with PIL's resampling (antialiased when shrinking)."""
  grey = image.shape[-1] == 1
  resized = np.asarray(Image.fromarray(image[..., 0] if grey else image).resize((width, height), _RESAMPLE[method]))
  return resized[..., None] if grey else resized


CROP_DRAWS = 2 * _TRIES + 2  # Uniforms behind one RandomResizedCrop box: areas, ratios, placement.


def random_resized_crop_box(height: int, width: int, draws, scale) -> tuple[int, int, int, int]:
  """torchvision's RandomResizedCrop.get_params: (top, left, h, w), from CROP_DRAWS uniforms in [0, 1).

  Ten candidate boxes with area in scale * H * W (draws 0-9) and log-uniform aspect ratio in [3/4, 4/3]
  (draws 10-19); the first that fits is placed uniformly (draws 20, 21); if none fits, the centre crop
  with the ratio clamped to that range.
  """
  low, high = math.log(_RATIO[0]), math.log(_RATIO[1])
  for k in range(_TRIES):
    area = height * width * (scale[0] + (scale[1] - scale[0]) * draws[k])
    ratio = math.exp(low + (high - low) * draws[_TRIES + k])
    w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))  # Half to even, as torchvision.
    if 0 < w <= width and 0 < h <= height:
      return int(draws[-2] * (height - h + 1)), int(draws[-1] * (width - w + 1)), h, w
  in_ratio = width / height
  h = round(width / _RATIO[0]) if in_ratio < _RATIO[0] else height
  w = round(height * _RATIO[1]) if in_ratio > _RATIO[1] else width
  h, w = min(h, height), min(w, width)
  return (height - h) // 2, (width - w) // 2, h, w


def crop_flip_batch(images: np.ndarray, rng: np.random.Generator, padding: int, flip: bool) -> np.ndarray:
  """Random crops of uint8 [B, H, W, C] after reflect padding by `padding`, and horizontal flips: [B, H, W, C].

  Draws B (top, left) offsets in [0, 2 padding] and then B flips, whatever the options (unused draws are
  discarded), so the crops do not depend on whether flipping is on.
  """
  count, height, width = images.shape[:3]
  offsets = rng.integers(0, 2 * padding + 1, (count, 2)).tolist()
  flips = (rng.random(count) < 0.5) & flip
  out = np.empty_like(images)
  if padding:
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")
    for i, (top, left) in enumerate(offsets):  # One slice copy per image: far faster than a gather.
      out[i] = padded[i, top : top + height, left : left + width]
  else:
    out[:] = images
  out[flips] = out[flips, :, ::-1]
  return out


def eval_image(image, size: int, resize_to: int, method: str, channels: int) -> np.ndarray:
  """Decode (when encoded), resize the shorter side to `resize_to` (kept when already so), centre crop.

  The longer side becomes int(resize_to * long / short), and the crop's top-left corner is
  round((H - size) / 2), as torchvision's Resize and CenterCrop do.
  """
  image = image if isinstance(image, np.ndarray) else decoding.decode(image, channels)
  height, width = image.shape[:2]
  short = min(height, width)
  if short != resize_to:
    image = resize(image, height * resize_to // short, width * resize_to // short, method)
    height, width = image.shape[:2]
  top, left = round((height - size) / 2), round((width - size) / 2)
  return image[top : top + size, left : left + size]


class View:
  """One training recipe (`DataOptions`: crop, flip, RandAugment, Cutout) producing size x size images."""

  def __init__(self, options: DataOptions, size: int, channels: int):
    self.options, self.size, self.channels = options, size, channels
    self.per_image_draws = bool(options.randaugment.num_ops or options.cutout.size)

  def _resized_crop(self, image, draws: list[float], flip: bool) -> np.ndarray:
    """RandomResizedCrop (and flip) of one uint8 image or encoded image."""
    options = self.options
    image = image if isinstance(image, np.ndarray) else decoding.decode(image, self.channels)
    top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], draws, options.crop_scale)
    image = resize(image[top : top + h, left : left + w], self.size, self.size, options.resize_method)
    return image[:, ::-1] if flip else image

  def batch(self, images, rng: np.random.Generator, image_rngs) -> np.ndarray:
    """The view of a batch: uint8 [B, size, size, C].

    Crops and flips come from the batch's generator, all at once (B crop offsets or B x CROP_DRAWS
    uniforms, then B flips); RandAugment and Cutout from one generator per image.

    Args:
      images: uint8 [B, H, W, C] (one size, in memory) or a list of B images (uint8 arrays or encoded bytes).
      rng: the batch's generator.
      image_rngs: () -> B generators, one per image; called only when RandAugment or Cutout is on.
    """
    options, count = self.options, len(images)
    if options.augment == "random_resized_crop":
      draws = rng.random((count, CROP_DRAWS)).tolist()
      flips = ((rng.random(count) < 0.5) & options.flip).tolist()
      out = np.stack([self._resized_crop(image, d, f) for image, d, f in zip(images, draws, flips, strict=True)])
    else:
      if not isinstance(images, np.ndarray):
        images = np.stack([decoding.decode(image, self.channels) for image in images])
      out = crop_flip_batch(images, rng, options.crop_padding, options.flip)
    if not self.per_image_draws:
      return out
    for i, image_rng in enumerate(image_rngs()):
      if options.randaugment.num_ops:
        out[i] = rand_augment.rand_augment(out[i], image_rng, options.randaugment)
      if options.cutout.size:
        cut = options.cutout
        out[i] = rand_augment.cutout(out[i], image_rng, cut.size, cut.fill, cut.prob)
    return out
