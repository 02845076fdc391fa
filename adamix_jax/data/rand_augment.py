"""RandAugment and Cutout on uint8 numpy images: PIL's operations, each draw from a numpy Generator.

    image = rand_augment(image, rng, policy)   # uint8 [H, W, C] -> uint8 [H, W, C], C = 1 or 3
    image = cutout(image, rng, size=16, fill=(127, 127, 127), prob=1.0)

Every operation reproduces the PIL function that FixMatch, TorchSSL and OpenMixup call on uint8 images
(`ImageOps.autocontrast`, `ImageOps.equalize`, `ImageOps.posterize`, `ImageOps.solarize`,
`ImageEnhance.{Brightness,Color,Contrast,Sharpness}`, and `Image.rotate` / `Image.transform(AFFINE)`
with nearest-neighbour sampling and a fill colour), including PIL's pixel-centre convention and its
truncating blend, so that `tests/test_rand_augment.py` can hold each to PIL on real images.

A `Policy` says which operations RandAugment draws from and how a magnitude level maps to each one's
argument: per image, `num_ops` operations are drawn uniformly with replacement, each is applied with
probability `prob`, at magnitude value `low + (high - low) * level / max_level`, negated with probability
`negate_prob` for the operations that have a direction. With `level_std` > 0 each drawn operation's level
is itself drawn, from a normal around `level` clipped to [0, max_level] (timm's and OpenMixup's
`magnitude_std`, e.g. "rand-m7-mstd0.5"). Every draw comes from the `numpy.random.Generator` passed in,
in a fixed order, so an image's result is a function of that generator's seed.
"""

import dataclasses
import math

import numpy as np

from adamix_jax.config import ConfigError
from adamix_jax.options import Options, colour, each, non_negative, one_of, option, positive, unit_interval

# name -> (low, high, kind). kind: "none" (no argument), "factor" (PIL enhance factor 1 +/- value),
# "signed" (rotation degrees, shear, translation as a fraction of the side: value or -value), "plain".
FIXMATCH_OPERATIONS = {
  "AutoContrast": (0.0, 0.0, "none"),
  "Brightness": (0.05, 0.95, "factor"),
  "Color": (0.05, 0.95, "factor"),
  "Contrast": (0.05, 0.95, "factor"),
  "Equalize": (0.0, 0.0, "none"),
  "Identity": (0.0, 0.0, "none"),
  "Posterize": (4.0, 8.0, "plain"),  # Bits kept (rounded up).
  "Rotate": (0.0, 30.0, "signed"),  # Degrees, counter-clockwise when positive.
  "Sharpness": (0.05, 0.95, "factor"),
  "ShearX": (0.0, 0.3, "signed"),
  "ShearY": (0.0, 0.3, "signed"),
  "Solarize": (256.0, 0.0, "plain"),  # Threshold: pixels at or above it are inverted.
  "TranslateX": (0.0, 0.3, "signed"),  # Fraction of the width.
  "TranslateY": (0.0, 0.3, "signed"),
}


@dataclasses.dataclass(frozen=True)
class Policy(Options):
  """A RandAugment policy (OpenMixup's `RandAugment` with the FixMatch operations by default): the options
  `config.data.randaugment` (and `config.semisup.strong.randaugment`).

  Attributes:
    num_ops: operations drawn per image (with replacement); 0 turns RandAugment off.
    level: the magnitude level, out of `max_level` (level = max_level: each range's far end).
    max_level: the level of the far end of every range.
    prob: probability that each drawn operation is applied.
    negate_prob: probability that a directed operation (and an enhance factor's offset) is negated.
    operations: names of FIXMATCH_OPERATIONS to draw from; (): all of them.
    fill: the colour of pixels that a geometric operation brings in from outside the image.
    level_std: standard deviation of each operation's level around `level` (0: every operation at `level`).
  """

  section = "data.randaugment"
  num_ops: int = option("num_ops", non_negative, default=3)
  level: float = option("level", non_negative, default=30.0)
  max_level: float = option("max_level", positive, default=30.0)
  prob: float = option("prob", unit_interval, default=0.5)
  negate_prob: float = option("negate_prob", unit_interval, default=0.5)
  operations: tuple[str, ...] = option("operations", each(one_of(FIXMATCH_OPERATIONS)), default=())
  fill: tuple[int, ...] = option("fill", colour, default=(128, 128, 128))
  level_std: float = option("level_std", non_negative, default=0.0)

  def check(self):
    if self.level > self.max_level:
      raise ConfigError(f"{self.key('level')} = {self.level} exceeds max_level = {self.max_level}.")


@dataclasses.dataclass(frozen=True)
class CutoutOptions(Options):
  """Cutout (`config.data.cutout`, `config.semisup.strong.cutout`): one size x size square of `fill`,
  cut with probability `prob`; size 0 is off."""

  section = "data.cutout"
  size: int = option("size", non_negative)
  fill: tuple[int, ...] = option("fill", colour)
  prob: float = option("prob", unit_interval)


def _to_uint8(values: np.ndarray) -> np.ndarray:
  """PIL's float -> uint8: clip to [0, 255] and truncate."""
  return np.floor(np.clip(values, 0.0, 255.0)).astype(np.uint8)


def blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
  """PIL's Image.blend(degenerate, image, factor): degenerate + factor (image - degenerate), truncated."""
  base = degenerate.astype(np.float32)
  return _to_uint8(base + np.float32(factor) * (image.astype(np.float32) - base))


def grey(image: np.ndarray) -> np.ndarray:
  """PIL's convert("L") of an RGB image, [H, W, 1]: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
  if image.shape[-1] == 1:
    return image
  luma = image.astype(np.int32) @ np.array([19595, 38470, 7471], np.int32) + 0x8000
  return (luma >> 16).astype(np.uint8)[..., None]


def _per_channel_lut(image: np.ndarray, make_lut) -> np.ndarray:
  """Applies `make_lut(histogram int64 [256]) -> int [256]` to each channel's pixels."""
  out = np.empty_like(image)
  for c in range(image.shape[-1]):
    channel = image[..., c]
    lut = np.clip(make_lut(np.bincount(channel.ravel(), minlength=256)), 0, 255).astype(np.uint8)
    out[..., c] = lut[channel]
  return out


def auto_contrast(image: np.ndarray) -> np.ndarray:
  """ImageOps.autocontrast: each channel's [lo, hi] stretched to [0, 255] (int(i * scale + offset))."""

  def lut(histogram):
    present = np.flatnonzero(histogram)
    lo, hi = present[0], present[-1]
    if hi <= lo:
      return np.arange(256)
    scale = 255.0 / (hi - lo)
    return (np.arange(256) * scale - lo * scale).astype(np.int64)  # Truncated towards zero, as int().

  return _per_channel_lut(image, lut)


def equalize(image: np.ndarray) -> np.ndarray:
  """ImageOps.equalize: each channel's cumulative histogram, without its last bin, spread over 256 levels."""

  def lut(histogram):
    step = (histogram.sum() - histogram[np.flatnonzero(histogram)[-1]]) // 255
    if not step:
      return np.arange(256)
    exclusive = np.concatenate([[0], np.cumsum(histogram)[:-1]])
    return (step // 2 + exclusive) // step

  return _per_channel_lut(image, lut)


def posterize(image: np.ndarray, bits: float) -> np.ndarray:
  """ImageOps.posterize: keep the `bits` (rounded up, 1 to 8) highest bits of every value."""
  bits = min(max(math.ceil(bits), 1), 8)
  return image & np.uint8(256 - (1 << (8 - bits)))


def solarize(image: np.ndarray, threshold: float) -> np.ndarray:
  """ImageOps.solarize: values at or above `threshold` are inverted."""
  return np.where(image < threshold, image, 255 - image).astype(np.uint8)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
  """ImageEnhance.Brightness: a blend with black."""
  return blend(np.zeros_like(image), image, factor)


def color(image: np.ndarray, factor: float) -> np.ndarray:
  """ImageEnhance.Color: a blend with the grey image (a grey image is unchanged)."""
  return blend(np.broadcast_to(grey(image), image.shape), image, factor)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
  """ImageEnhance.Contrast: a blend with the grey image's mean level, int(mean + 0.5)."""
  mean = int(grey(image).mean(dtype=np.float64) + 0.5)
  return blend(np.full_like(image, mean), image, factor)


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
  """ImageEnhance.Sharpness: a blend with the image smoothed by PIL's SMOOTH kernel (border pixels kept)."""
  height, width = image.shape[:2]
  values = image.astype(np.float32)
  total = sum(values[dy : height - 2 + dy, dx : width - 2 + dx] for dy in range(3) for dx in range(3))
  smooth = image.copy()
  smooth[1:-1, 1:-1] = _to_uint8((total + 4.0 * values[1:-1, 1:-1]) / 13.0 + 0.5)  # Centre weight 5 = 1 + 4.
  return blend(smooth, image, factor)


def affine(image: np.ndarray, matrix, fill) -> np.ndarray:
  """Image.transform(AFFINE, matrix, NEAREST, fillcolor=fill): output pixel (x, y) reads input pixel
  floor(a (x + 1/2) + b (y + 1/2) + c), floor(d (x + 1/2) + e (y + 1/2) + f), as PIL does.

  Args:
    matrix: (a, b, c, d, e, f).
    fill: the colour of pixels read from outside the image, one value per channel.
  """
  a, b, c, d, e, f = (float(v) for v in matrix)
  height, width, channels = image.shape
  ys, xs = np.mgrid[:height, :width] + 0.5
  source_x = np.floor(a * xs + b * ys + c).astype(np.int64)
  source_y = np.floor(d * xs + e * ys + f).astype(np.int64)
  inside = (source_x >= 0) & (source_x < width) & (source_y >= 0) & (source_y < height)
  out = np.empty_like(image)
  out[:] = np.asarray(fill[:channels], np.uint8)
  out[inside] = image[source_y[inside], source_x[inside]]
  return out


def rotate(image: np.ndarray, degrees: float, fill) -> np.ndarray:
  """Image.rotate(degrees, NEAREST, fillcolor=fill): counter-clockwise about the centre (W / 2, H / 2)."""
  height, width = image.shape[:2]
  angle = -math.radians(degrees)
  cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
  cx, cy = width / 2, height / 2
  matrix = (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
  return affine(image, matrix, fill)


def shear_x(image: np.ndarray, shear: float, fill) -> np.ndarray:
  """AFFINE (1, shear, 0, 0, 1, 0): output (x, y) reads input (x + shear y, y)."""
  return affine(image, (1.0, shear, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(image: np.ndarray, shear: float, fill) -> np.ndarray:
  """AFFINE (1, 0, 0, shear, 1, 0): output (x, y) reads input (x, y + shear x)."""
  return affine(image, (1.0, 0.0, 0.0, shear, 1.0, 0.0), fill)


def translate_x(image: np.ndarray, fraction: float, fill) -> np.ndarray:
  """AFFINE (1, 0, fraction W, 0, 1, 0): the content moves left by fraction W pixels when positive."""
  return affine(image, (1.0, 0.0, round(fraction * image.shape[1]), 0.0, 1.0, 0.0), fill)


def translate_y(image: np.ndarray, fraction: float, fill) -> np.ndarray:
  """AFFINE (1, 0, 0, 0, 1, fraction H): the content moves up by fraction H pixels when positive."""
  return affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, round(fraction * image.shape[0])), fill)


_GEOMETRIC = {"Rotate": rotate, "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x}
_GEOMETRIC["TranslateY"] = translate_y
_POINTWISE = {"Brightness": brightness, "Color": color, "Contrast": contrast, "Sharpness": sharpness}
_POINTWISE.update(Posterize=posterize, Solarize=solarize)
_PLAIN = {"AutoContrast": auto_contrast, "Equalize": equalize, "Identity": lambda image: image}


def apply(name: str, image: np.ndarray, value: float, fill=(128, 128, 128)) -> np.ndarray:
  """Operation `name` of FIXMATCH_OPERATIONS on uint8 [H, W, C] with its argument `value` (a factor, bits,
  degrees, ...)."""
  if name in _PLAIN:
    return _PLAIN[name](image)
  if name in _GEOMETRIC:
    return _GEOMETRIC[name](image, value, fill)
  return _POINTWISE[name](image, value)


def operation_value(name: str, negate: bool, level: float, policy: Policy) -> float:
  """The argument of operation `name` at `level`, negated (for directed operations) if `negate`."""
  low, high, kind = FIXMATCH_OPERATIONS[name]
  value = low + (high - low) * level / policy.max_level
  if kind in ("factor", "signed") and negate:
    value = -value
  return 1.0 + value if kind == "factor" else value


def rand_augment(image: np.ndarray, rng: np.random.Generator, policy: Policy) -> np.ndarray:
  """RandAugment of one uint8 image [H, W, C] (see the module docstring).

  Each of the `num_ops` draws takes, in this order: the operation, whether it applies, whether it is
  negated, and its level's normal deviate (always drawn, used when `level_std` > 0).
  """
  names = list(policy.operations or FIXMATCH_OPERATIONS)
  for _ in range(policy.num_ops):
    index, applies, negate, deviate = rng.integers(len(names)), rng.random(), rng.random(), rng.standard_normal()
    if applies >= policy.prob:
      continue
    level = policy.level
    if policy.level_std:
      level = min(max(policy.level + policy.level_std * deviate, 0.0), policy.max_level)
    name = names[index]
    image = apply(name, image, operation_value(name, negate < policy.negate_prob, level, policy), policy.fill)
  return image


def cutout(image: np.ndarray, rng: np.random.Generator, size: int, fill, prob: float = 1.0) -> np.ndarray:
  """Fills a size x size square whose top-left corner is uniform over the image (clipped at the border).

  Args:
    image: uint8 [H, W, C].
    rng: draws the corner, then whether the square is cut at all.
    fill: one value per channel.
    prob: probability that the square is cut.
  """
  height, width, channels = image.shape
  top, left, cut = rng.integers(height), rng.integers(width), rng.random() < prob
  if not cut:
    return image
  out = image.copy()
  out[top : top + size, left : left + size] = np.asarray(fill[:channels], np.uint8)
  return out
