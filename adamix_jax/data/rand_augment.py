"""RandAugment and Cutout on uint8 images inside tf.data: PIL's operations, deterministic per example.

    image = rand_augment(image, seed, policy)   # uint8 [H, W, C] -> uint8 [H, W, C], C = 1 or 3
    image = cutout(image, seed, size=16, fill=(127, 127, 127), prob=1.0)

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
`magnitude_std`, e.g. "rand-m7-mstd0.5"). Every draw comes from a stateless seed.
"""

import dataclasses
import math

from adamix_jax import quiet
from adamix_jax.config import ConfigError
from adamix_jax.options import Options, colour, each, non_negative, one_of, option, positive, unit_interval

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.


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


def _float(image: tf.Tensor) -> tf.Tensor:
  return tf.cast(image, tf.float32)


def _to_uint8(values: tf.Tensor) -> tf.Tensor:
  """PIL's float -> uint8: clip to [0, 255] and truncate."""
  return tf.cast(tf.floor(tf.clip_by_value(values, 0.0, 255.0)), tf.uint8)


def blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
  """PIL's Image.blend(degenerate, image, factor): degenerate + factor (image - degenerate), truncated."""
  return _to_uint8(_float(degenerate) + factor * (_float(image) - _float(degenerate)))


def grey(image: tf.Tensor) -> tf.Tensor:
  """PIL's convert("L") of an RGB image, [H, W, 1]: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
  if image.shape[-1] == 1:
    return image
  weights = tf.constant([19595, 38470, 7471], tf.int32)
  luma = tf.reduce_sum(tf.cast(image, tf.int32) * weights, axis=-1, keepdims=True) + 0x8000
  return tf.cast(tf.bitwise.right_shift(luma, 16), tf.uint8)


def _per_channel_lut(image: tf.Tensor, make_lut) -> tf.Tensor:
  """Applies `make_lut(histogram int32 [256]) -> int32 [256]` to each channel's pixels."""
  channels = []
  for c in range(image.shape[-1]):
    channel = tf.cast(image[..., c], tf.int32)
    lut = make_lut(tf.math.bincount(tf.reshape(channel, [-1]), minlength=256, maxlength=256))
    channels.append(tf.gather(tf.clip_by_value(lut, 0, 255), channel))
  return tf.cast(tf.stack(channels, axis=-1), tf.uint8)


def auto_contrast(image: tf.Tensor) -> tf.Tensor:
  """ImageOps.autocontrast: each channel's [lo, hi] stretched to [0, 255] (int(i * scale + offset))."""

  def lut(histogram):
    present = tf.where(histogram > 0)[:, 0]
    lo, hi = tf.cast(tf.reduce_min(present), tf.float32), tf.cast(tf.reduce_max(present), tf.float32)
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = tf.cast(tf.range(256, dtype=tf.float32) * scale - lo * scale, tf.int32)
    return tf.where(hi > lo, stretched, tf.range(256))

  return _per_channel_lut(image, lut)


def equalize(image: tf.Tensor) -> tf.Tensor:
  """ImageOps.equalize: each channel's cumulative histogram, without its last bin, spread over 256 levels."""

  def lut(histogram):
    present = tf.boolean_mask(histogram, histogram > 0)
    step = (tf.reduce_sum(histogram) - present[-1]) // 255
    cumulative = tf.cumsum(histogram, exclusive=True)
    return tf.where(step > 0, (step // 2 + cumulative) // tf.maximum(step, 1), tf.range(256))

  return _per_channel_lut(image, lut)


def posterize(image: tf.Tensor, bits) -> tf.Tensor:
  """ImageOps.posterize: keep the `bits` (rounded up, 1 to 8) highest bits of every value."""
  bits = tf.clip_by_value(tf.cast(tf.math.ceil(tf.cast(bits, tf.float32)), tf.int32), 1, 8)
  mask = tf.cast(256 - tf.bitwise.left_shift(1, 8 - bits), tf.uint8)
  return tf.bitwise.bitwise_and(image, mask)


def solarize(image: tf.Tensor, threshold) -> tf.Tensor:
  """ImageOps.solarize: values at or above `threshold` are inverted."""
  return tf.where(_float(image) < tf.cast(threshold, tf.float32), image, 255 - image)


def brightness(image: tf.Tensor, factor) -> tf.Tensor:
  """ImageEnhance.Brightness: a blend with black."""
  return blend(tf.zeros_like(image), image, factor)


def color(image: tf.Tensor, factor) -> tf.Tensor:
  """ImageEnhance.Color: a blend with the grey image (a grey image is unchanged)."""
  return blend(tf.broadcast_to(grey(image), tf.shape(image)), image, factor)


def contrast(image: tf.Tensor, factor) -> tf.Tensor:
  """ImageEnhance.Contrast: a blend with the grey image's mean level, int(mean + 0.5)."""
  mean = tf.floor(tf.reduce_mean(_float(grey(image))) + 0.5)
  return blend(tf.fill(tf.shape(image), tf.cast(mean, tf.uint8)), image, factor)


def sharpness(image: tf.Tensor, factor) -> tf.Tensor:
  """ImageEnhance.Sharpness: a blend with the image smoothed by PIL's SMOOTH kernel (border pixels kept)."""
  kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
  channels = image.shape[-1]
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
  smooth = tf.nn.depthwise_conv2d(_float(image)[None], kernel, [1, 1, 1, 1], "VALID")[0]
  smooth = tf.pad(_to_uint8(smooth + 0.5), [[1, 1], [1, 1], [0, 0]])
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  inside = tf.pad(tf.ones([height - 2, width - 2, channels], tf.bool), [[1, 1], [1, 1], [0, 0]])
  return blend(tf.where(inside, smooth, image), image, factor)


def affine(image: tf.Tensor, matrix, fill) -> tf.Tensor:
  """Image.transform(AFFINE, matrix, NEAREST, fillcolor=fill): output pixel (x, y) reads input pixel
  floor(a (x + 1/2) + b (y + 1/2) + c), floor(d (x + 1/2) + e (y + 1/2) + f), as PIL does.

  Args:
    matrix: (a, b, c, d, e, f), float.
    fill: the colour of pixels read from outside the image, one value per channel.
  """
  a, b, c, d, e, f = (tf.cast(v, tf.float32) for v in matrix)
  # TF's nearest sampling rounds a x + b y + c; shifting c by (a + b - 1) / 2 makes it PIL's floor at centres.
  transform = tf.stack([a, b, c + (a + b - 1) / 2, d, e, f + (d + e - 1) / 2, 0.0, 0.0])[None]
  shape = tf.shape(image)[:2]

  def warp(values):
    return tf.raw_ops.ImageProjectiveTransformV3(
      images=values[None], transforms=transform, output_shape=shape, fill_value=0.0,
      interpolation="NEAREST", fill_mode="CONSTANT",
    )[0]  # fmt: skip

  warped = warp(_float(image))
  inside = warp(tf.ones_like(_float(image[..., :1]))) > 0
  fill = tf.constant(fill, tf.float32)[: image.shape[-1]]
  return tf.cast(tf.where(inside, warped, fill), tf.uint8)


def rotate(image: tf.Tensor, degrees, fill) -> tf.Tensor:
  """Image.rotate(degrees, NEAREST, fillcolor=fill): counter-clockwise about the centre (W / 2, H / 2)."""
  height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
  angle = -tf.cast(degrees, tf.float32) * math.pi / 180
  cos, sin = tf.cos(angle), tf.sin(angle)
  cx, cy = width / 2, height / 2
  matrix = (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
  return affine(image, matrix, fill)


def shear_x(image: tf.Tensor, shear, fill) -> tf.Tensor:
  """AFFINE (1, shear, 0, 0, 1, 0): output (x, y) reads input (x + shear y, y)."""
  return affine(image, (1.0, shear, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(image: tf.Tensor, shear, fill) -> tf.Tensor:
  """AFFINE (1, 0, 0, shear, 1, 0): output (x, y) reads input (x, y + shear x)."""
  return affine(image, (1.0, 0.0, 0.0, shear, 1.0, 0.0), fill)


def translate_x(image: tf.Tensor, fraction, fill) -> tf.Tensor:
  """AFFINE (1, 0, fraction W, 0, 1, 0): the content moves left by fraction W pixels when positive."""
  pixels = tf.round(fraction * tf.cast(tf.shape(image)[1], tf.float32))
  return affine(image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill)


def translate_y(image: tf.Tensor, fraction, fill) -> tf.Tensor:
  """AFFINE (1, 0, 0, 0, 1, fraction H): the content moves up by fraction H pixels when positive."""
  pixels = tf.round(fraction * tf.cast(tf.shape(image)[0], tf.float32))
  return affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill)


def apply(name: str, image: tf.Tensor, value, fill=(128, 128, 128)) -> tf.Tensor:
  """Operation `name` of FIXMATCH_OPERATIONS with its argument `value` (a factor, bits, degrees, ...)."""
  if name in ("AutoContrast", "Equalize", "Identity"):
    return {"AutoContrast": auto_contrast, "Equalize": equalize, "Identity": tf.identity}[name](image)
  if name in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
    geometric = {"Rotate": rotate, "ShearX": shear_x, "ShearY": shear_y, "TranslateX": translate_x}
    return {**geometric, "TranslateY": translate_y}[name](image, value, fill)
  pointwise = {"Brightness": brightness, "Color": color, "Contrast": contrast, "Sharpness": sharpness}
  return {**pointwise, "Posterize": posterize, "Solarize": solarize}[name](image, value)


def _operation_value(name: str, negate: tf.Tensor, level, policy: Policy):
  """The argument of operation `name` at `level`, negated (for directed operations) if `negate`."""
  low, high, kind = FIXMATCH_OPERATIONS[name]
  value = low + (high - low) * level / policy.max_level
  if kind in ("factor", "signed"):
    value = tf.where(negate, -value, value)
  return 1.0 + value if kind == "factor" else value


def _random_operation(image: tf.Tensor, seed: tf.Tensor, policy: Policy) -> tf.Tensor:
  """One RandAugment draw: an operation chosen uniformly, applied with probability `policy.prob`."""
  choice_seed, apply_seed, sign_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  names = list(policy.operations or FIXMATCH_OPERATIONS)
  index = tf.random.stateless_uniform([], choice_seed, 0, len(names), dtype=tf.int32)
  negate = tf.random.stateless_uniform([], sign_seed) < policy.negate_prob
  level = policy.level
  if policy.level_std:
    level_seed = tf.random.experimental.stateless_fold_in(seed, 3)
    drawn = policy.level + policy.level_std * tf.random.stateless_normal([], level_seed)
    level = tf.clip_by_value(drawn, 0.0, policy.max_level)
  branches = [
    lambda name=name: apply(name, image, _operation_value(name, negate, level, policy), policy.fill) for name in names
  ]
  augmented = tf.switch_case(index, branches)
  return tf.where(tf.random.stateless_uniform([], apply_seed) < policy.prob, augmented, image)


def rand_augment(image: tf.Tensor, seed: tf.Tensor, policy: Policy) -> tf.Tensor:
  """RandAugment of one uint8 image [H, W, C] from a stateless seed [2] (see the module docstring)."""
  if policy.num_ops == 0:
    return image
  for op_seed in tf.unstack(tf.random.experimental.stateless_split(seed, policy.num_ops)):
    image = _random_operation(image, op_seed, policy)
  return image


def cutout(image: tf.Tensor, seed: tf.Tensor, size: int, fill, prob: float = 1.0) -> tf.Tensor:
  """Fills a size x size square whose top-left corner is uniform over the image (clipped at the border).

  Args:
    seed: stateless seed [2].
    fill: one value per channel.
    prob: probability that the square is cut at all.
  """
  corner_seed, apply_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  top, left = tf.unstack(tf.random.stateless_uniform([2], corner_seed, 0, 2**30, dtype=tf.int32) % [height, width])
  rows, cols = tf.range(height)[:, None], tf.range(width)[None, :]
  square = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
  square &= tf.random.stateless_uniform([], apply_seed) < prob
  fill = tf.constant(fill, tf.uint8)[: image.shape[-1]]
  return tf.where(square[..., None], fill, image)
