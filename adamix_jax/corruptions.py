"""Common corruptions: the released CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C sets, and a generated set::

    sets = open_corruptions(config, info, corruption_dir="/data/CIFAR-100-C")
    for name in sets.names:
      for severity in SEVERITIES:
        images, labels = sets.load(name, severity)   # uint8 [n, H, W, C], int32 [n]

Released layouts (Hendrycks & Dietterich, ICLR 2019):
  - CIFAR-10-C / CIFAR-100-C: DIR/<corruption>.npy, 5 x n images each (severities 1 to 5 in order), and
    DIR/labels.npy (the n test labels, repeated for each severity). 19 corruptions: the 15 "common" ones
    and 4 extra (speckle noise, gaussian blur, spatter, saturate).
  - Tiny-ImageNet-C (and ImageNet-C): DIR/<corruption>/<severity>/<class id>/<image>, the 15 common ones.

For a dataset with no released set (the embedded one included), `generate` corrupts the clean test split
with the CIFAR-C parameters (hendrycks/robustness `make_cifar_c.py`) of the corruptions that need nothing
outside numpy and Pillow (GENERATED); glass blur, motion blur, snow, frost, spatter and the elastic
transform are left out (they need ImageMagick, frost photographs or OpenCV warps). PyPI's
`imagecorruptions` (1.1.2, 2020) was considered: it fails on current scikit-image (`multichannel` was
removed) and refuses images under 32 pixels. Colour-only corruptions (saturate) are skipped on grey data.
"""

import dataclasses
import io
import math
import os
from collections.abc import Callable

import ml_collections
import numpy as np
from PIL import Image

CIFAR_C = (
  "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
  "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
  "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
IMAGENET_C = CIFAR_C[:15]
SEVERITIES = (1, 2, 3, 4, 5)
# The released set each dataset is evaluated on (read from --corruption_dir); the others are generated.
RELEASED = {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C", "tiny_imagenet": "Tiny-ImageNet-C",
            "imagenet2012": "ImageNet-C"}  # fmt: skip


class CorruptionError(ValueError):
  """A corruption directory that is missing or not in a released layout. Says what to do."""


@dataclasses.dataclass(frozen=True)
class CorruptionSet:
  """Corrupted test images by (corruption, severity).

  Attributes:
    description: what the set is (released name and directory, or the generation and its parameters).
    names: the corruptions, in the released order.
    size: n, the test images of each (corruption, severity).
    load: (name, severity 1-5, part) -> (uint8 images [m, H, W, C], int32 labels [m]): with part = (index,
      count), the examples index, index + count, ... (one process's share; (0, 1): all n).
  """

  description: str
  names: tuple[str, ...]
  size: int
  load: Callable[[str, int, tuple[int, int]], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------------------------- released sets


def read_npy_layout(directory: str, image_shape: tuple[int, int, int]) -> CorruptionSet:
  """CIFAR-10-C / CIFAR-100-C: DIR/labels.npy and DIR/<corruption>.npy ([5 n, H, W, C] uint8), memory-mapped.

  Raises:
    CorruptionError: no labels.npy, no corruption file, or a file whose shape does not match the labels
      and the run's images.
  """
  layout = "the released layout: <corruption>.npy of 5 x n images (severities 1-5 in order) and labels.npy"
  labels_path = os.path.join(directory, "labels.npy")
  if not os.path.isfile(labels_path):
    raise CorruptionError(f"{directory} has no labels.npy: expected {layout}.")
  labels = np.load(labels_path)
  if labels.ndim != 1 or len(labels) % len(SEVERITIES):
    raise CorruptionError(f"{labels_path} holds {labels.shape}, not 5 x n labels: expected {layout}.")
  names = tuple(name for name in CIFAR_C if os.path.isfile(os.path.join(directory, f"{name}.npy")))
  if not names:
    raise CorruptionError(f"{directory} holds none of the corruption files ({', '.join(CIFAR_C)}.npy).")
  n = len(labels) // len(SEVERITIES)
  expected = (len(labels), *image_shape)

  def load(name: str, severity: int, part=(0, 1)):
    images = np.load(os.path.join(directory, f"{name}.npy"), mmap_mode="r")
    if images.shape != expected or images.dtype != np.uint8:
      raise CorruptionError(
        f"{name}.npy holds {images.dtype} {images.shape}; expected uint8 {expected} (labels.npy and the "
        f"run's {image_shape[0]}x{image_shape[1]} images)."
      )
    rows = slice((severity - 1) * n + part[0], severity * n, part[1])
    return np.asarray(images[rows]), labels[rows].astype(np.int32)

  return CorruptionSet(f"released set in {directory} ({len(names)} corruptions)", names, n, load)


def read_folder_layout(directory: str, classes: tuple[str, ...], image_shape) -> CorruptionSet:
  """Tiny-ImageNet-C / ImageNet-C: DIR/<corruption>/<severity>/<class id>/<image>, labelled by `classes`
  (the run's training classes, sorted directory names).

  Raises:
    CorruptionError: no corruption directory, a missing severity, a class the run does not know, or images
      of another size than the run's.
  """
  from adamix_jax.data import image_folder

  names = tuple(name for name in IMAGENET_C if os.path.isdir(os.path.join(directory, name)))
  if not names:
    raise CorruptionError(
      f"{directory} holds none of the corruption directories ({', '.join(IMAGENET_C)}): expected the "
      "released layout <corruption>/<severity 1-5>/<class>/<image>."
    )

  def listed(name: str, severity: int):
    try:
      return image_folder.list_split(os.path.join(directory, name), str(severity), classes)
    except image_folder.FolderLayoutError as error:
      raise CorruptionError(f"{name}, severity {severity}: {error}") from error

  def load(name: str, severity: int, part=(0, 1)):
    split = listed(name, severity)
    paths, labels = split.paths[part[0] :: part[1]], split.labels[part[0] :: part[1]]
    images = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])
    if images.shape[1:] != tuple(image_shape):
      raise CorruptionError(f"{name}/{severity} images are {images.shape[1:]}; the run's model sees {image_shape}.")
    return images, np.asarray(labels, np.int32)

  size = len(listed(names[0], 1).paths)
  return CorruptionSet(f"released set in {directory} ({len(names)} corruptions)", names, size, load)


def open_corruptions(
  config: ml_collections.ConfigDict, info, corruption_dir: str, clean: tuple[np.ndarray, np.ndarray]
) -> CorruptionSet:
  """The set to evaluate a run of `config` on: the released one in `corruption_dir`, or, for a dataset with
  no released set and no directory given, the one generated from `clean` (images, labels) of its test split.

  Raises:
    CorruptionError: a dataset with a released set and no (or a missing) directory.
  """
  released = RELEASED.get(config.data.name)
  if not corruption_dir:
    if released:
      raise CorruptionError(
        f"The corruption suite of {config.data.name} is {released}: download it (zenodo, Hendrycks & "
        f"Dietterich) and pass --corruption_dir DIR."
      )
    return generate(*clean, seed=config.seed)
  if not os.path.isdir(corruption_dir):
    raise CorruptionError(f"--corruption_dir {corruption_dir} does not exist.")
  if os.path.isfile(os.path.join(corruption_dir, "labels.npy")):
    return read_npy_layout(corruption_dir, info.image_shape)
  return read_folder_layout(corruption_dir, info.class_names, info.image_shape)


# --------------------------------------------------------------------------------------------- generated set


def _filter(x: np.ndarray, kernel_1d: np.ndarray, axis: int, mode: str) -> np.ndarray:
  radius = len(kernel_1d) // 2
  pad = [(0, 0)] * x.ndim
  pad[axis] = (radius, radius)
  padded = np.pad(x, pad, mode=mode)
  out = np.zeros_like(x)
  for offset, weight in enumerate(kernel_1d):
    out += weight * np.take(padded, np.arange(offset, offset + x.shape[axis]), axis=axis)
  return out


def gaussian_filter(x: np.ndarray, sigma: float) -> np.ndarray:
  """skimage.filters.gaussian of float images [n, H, W, C] over H and W: truncate 4, 'nearest' borders."""
  radius = int(4.0 * sigma + 0.5)
  t = np.arange(-radius, radius + 1)
  kernel = np.exp(-0.5 * (t / sigma) ** 2)
  kernel /= kernel.sum()
  return _filter(_filter(x, kernel, 1, "edge"), kernel, 2, "edge")


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
  """The anti-aliased disk of CIFAR-C's defocus blur: [17, 17] (radius <= 8), summing to 1."""
  grid = np.arange(-8, 9)
  x, y = np.meshgrid(grid, grid)
  disk = (x**2 + y**2 <= radius**2).astype(np.float64)
  disk /= disk.sum()
  blur = np.exp(-((np.arange(3) - 1) ** 2) / (2 * alias_blur**2))  # OpenCV's 3-tap Gaussian, reflect-101.
  blur /= blur.sum()
  return _filter(_filter(disk[None, ..., None], blur, 1, "reflect"), blur, 2, "reflect")[0, ..., 0]


def _correlate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  r = kernel.shape[0] // 2
  padded = np.pad(x, [(0, 0), (r, r), (r, r), (0, 0)], mode="reflect")
  height, width = x.shape[1:3]
  out = np.zeros_like(x)
  for i, j in zip(*np.nonzero(kernel), strict=True):  # The disk's corners are zero.
    out += kernel[i, j] * padded[:, i : i + height, j : j + width]
  return out


def _linear_resize_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
  """scipy.ndimage.zoom(order=1) along `axis`: output i samples input i (n - 1) / (size - 1)."""
  n = x.shape[axis]
  coords = np.arange(size) * (n - 1) / (size - 1)
  low = np.floor(coords).astype(int).clip(0, n - 1)
  high = (low + 1).clip(0, n - 1)
  frac = (coords - low).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
  return np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
  """Zooms images [n, H, W, C] into their centre by `factor`, cropped back to H x W (CIFAR-C's helper)."""
  h = x.shape[1]
  crop = int(np.ceil(h / factor))
  top = (h - crop) // 2
  size = int(round(crop * factor))
  zoomed = x[:, top : top + crop, top : top + crop]
  zoomed = _linear_resize_axis(_linear_resize_axis(zoomed, size, 1), size, 2)
  trim = (size - h) // 2
  return zoomed[:, trim : trim + h, trim : trim + h]


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
  """A [size, size] diamond-square height map in [0, 1] (size a power of two): the fog of CIFAR-C."""
  grid = np.zeros((size, size))
  step, wibble = size, 100.0

  def wibbled(array):
    return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

  while step >= 2:
    half = step // 2
    corners = grid[0:size:step, 0:size:step]
    squares = corners + np.roll(corners, -1, axis=0)
    squares = squares + np.roll(squares, -1, axis=1)
    grid[half:size:step, half:size:step] = wibbled(squares)
    centres = grid[half:size:step, half:size:step]
    corners = grid[0:size:step, 0:size:step]
    grid[0:size:step, half:size:step] = wibbled(
      centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
    )
    grid[half:size:step, 0:size:step] = wibbled(
      centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
    )
    step //= 2
    wibble /= decay
  grid -= grid.min()
  return grid / grid.max()


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
  """skimage.color.rgb2hsv on [..., 3] floats in [0, 1]: hue and saturation 0 where undefined."""
  value = rgb.max(-1)
  delta = value - rgb.min(-1)
  saturation = np.where(value > 0, delta / np.where(value > 0, value, 1), 0)
  safe = np.where(delta > 0, delta, 1)
  r, g, b = np.moveaxis(rgb, -1, 0)
  hue = np.where(r == value, (g - b) / safe, np.where(g == value, 2 + (b - r) / safe, 4 + (r - g) / safe))
  hue = np.where(delta > 0, (hue / 6) % 1, 0)
  return np.stack([hue, saturation, value], -1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
  """skimage.color.hsv2rgb, the inverse of rgb_to_hsv."""
  h, s, v = np.moveaxis(hsv, -1, 0)
  sector = np.floor(h * 6).astype(int) % 6
  f = h * 6 - np.floor(h * 6)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
  return np.stack([np.choose(sector, [c[channel] for c in choices]) for channel in range(3)], -1)


def _per_image(x: np.ndarray, transform: Callable[[Image.Image], Image.Image]) -> np.ndarray:
  """Applies a Pillow transform to each uint8 image of float [n, H, W, C] in [0, 1]."""
  pixels = np.uint8(np.clip(x, 0, 1) * 255)
  out = []
  for image in pixels:
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out.append(np.asarray(transform(pil), np.float64).reshape(image.shape) / 255)
  return np.stack(out)


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
  def transform(image):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer)

  return transform


def _pixelate(factor: float) -> Callable[[Image.Image], Image.Image]:
  def transform(image):
    width, height = image.size
    small = image.resize((int(width * factor), int(height * factor)), Image.BOX)
    return small.resize((width, height), Image.BOX)

  return transform


def _fog(x, c, rng):
  size = 2 ** math.ceil(math.log2(max(x.shape[1:3])))
  fogged = []
  for image in x:
    peak = image.max()
    fog = c[0] * plasma_fractal(size, c[1], rng)[: x.shape[1], : x.shape[2], None]
    fogged.append((image + fog) * peak / (peak + c[0]))
  return np.stack(fogged)


def _brightness(x, c, rng):
  del rng
  if x.shape[-1] == 1:
    return x + c  # V is the grey value itself.
  hsv = rgb_to_hsv(x)
  hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
  return hsv_to_rgb(hsv)


def _saturate(x, c, rng):
  del rng
  hsv = rgb_to_hsv(x)
  hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
  return hsv_to_rgb(hsv)


def _impulse(x, amount, rng):
  flipped = rng.random(x.shape) < amount
  salted = rng.random(x.shape) < 0.5
  return np.where(flipped, salted.astype(x.dtype), x)


# name -> (severity parameters from make_cifar_c.py, float [n, H, W, C] in [0, 1], parameter, rng -> float).
GENERATED: dict[str, tuple[tuple, Callable]] = {
  "gaussian_noise": ((0.04, 0.06, 0.08, 0.09, 0.10), lambda x, c, rng: x + rng.normal(0, c, x.shape)),
  "shot_noise": ((500, 250, 100, 75, 50), lambda x, c, rng: rng.poisson(x * c) / c),
  "impulse_noise": ((0.01, 0.02, 0.03, 0.05, 0.07), _impulse),
  "defocus_blur": (
    ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    lambda x, c, rng: _correlate(x, disk_kernel(*c)),
  ),
  "zoom_blur": (
    tuple(np.arange(1, end, 0.01) for end in (1.06, 1.11, 1.16, 1.21, 1.26)),
    lambda x, c, rng: (x + sum(clipped_zoom(x, z) for z in c)) / (len(c) + 1),
  ),
  "fog": (((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)), _fog),
  "brightness": ((0.05, 0.1, 0.15, 0.2, 0.3), _brightness),
  "contrast": (
    (0.75, 0.5, 0.4, 0.3, 0.15),
    lambda x, c, rng: (x - x.mean(axis=(1, 2), keepdims=True)) * c + x.mean(axis=(1, 2), keepdims=True),
  ),
  "pixelate": ((0.95, 0.9, 0.85, 0.75, 0.65), lambda x, c, rng: _per_image(x, _pixelate(c))),
  "jpeg_compression": ((80, 65, 58, 50, 40), lambda x, c, rng: _per_image(x, _jpeg(c))),
  "speckle_noise": ((0.06, 0.1, 0.12, 0.16, 0.2), lambda x, c, rng: x + x * rng.normal(0, c, x.shape)),
  "gaussian_blur": ((0.4, 0.6, 0.7, 0.8, 1.0), lambda x, c, rng: gaussian_filter(x, c)),
  "saturate": (((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)), _saturate),
}
COLOUR_ONLY = ("saturate",)


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 images [n, H, W, C] corrupted by `name` at `severity` (1-5) with CIFAR-C's parameters."""
  if name not in GENERATED:
    raise CorruptionError(f"Corruption {name!r} is not generated here. Valid choices: {', '.join(GENERATED)}.")
  if severity not in SEVERITIES:
    raise CorruptionError(f"Severity {severity} is not one of {SEVERITIES}.")
  parameters, function = GENERATED[name]
  x = images.astype(np.float64) / 255
  return np.uint8(np.clip(function(x, parameters[severity - 1], rng), 0, 1) * 255)


def generate(images: np.ndarray, labels: np.ndarray, seed: int) -> CorruptionSet:
  """The generated set of uint8 test `images` [n, H, W, C]: each (corruption, severity, part) drawn from its
  own seed, so any one of them can be made alone and is the same every time."""
  names = tuple(n for n in CIFAR_C if n in GENERATED and (images.shape[-1] == 3 or n not in COLOUR_ONLY))

  def load(name: str, severity: int, part=(0, 1)):
    rng = np.random.default_rng([seed, CIFAR_C.index(name), severity, *part])
    share = images[part[0] :: part[1]]
    return corrupt(share, name, severity, rng), np.asarray(labels[part[0] :: part[1]], np.int32)

  description = (
    f"generated from the clean test split ({len(names)} corruptions with CIFAR-C's parameters, adamix_jax.corruptions)"
  )
  return CorruptionSet(description, names, len(labels), load)
