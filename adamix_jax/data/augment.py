"""Per-image preprocessing on the host (TensorFlow ops inside tf.data), as the official pipelines do it.

Training: "crop_flip" (CIFAR: random crop after reflect padding, horizontal flip) or "random_resized_crop"
(torchvision's RandomResizedCrop: area scale and log-uniform aspect ratio, ten tries then a centre crop,
resized with antialiasing, then a horizontal flip). Evaluation: resize the shorter side, centre crop.
Either can be followed by RandAugment and Cutout (`data.randaugment`, `data.cutout`; `rand_augment.py`).
Every random choice comes from a stateless seed, so the stream is a pure function of (seed, epoch, index).
Inputs are uint8 images [H, W, C] or encoded image bytes (JPEG, PNG, ...); outputs are uint8 [S, S, C].
"""

import math

from adamix_jax import quiet
from adamix_jax.data import rand_augment

tf = quiet.import_tensorflow()  # Until the data layer goes without it: gfile, summaries.

AUGMENTATIONS = ("crop_flip", "random_resized_crop")
RESIZE_METHODS = ("bilinear", "bicubic")
_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect-ratio range.
_TRIES = 10


def decode(contents: tf.Tensor) -> tf.Tensor:
  """Encoded image bytes -> uint8 [H, W, 3]."""
  return tf.io.decode_image(contents, channels=3, expand_animations=False)


def _shape(image: tf.Tensor, encoded: bool) -> tf.Tensor:
  """(H, W) of an image, read from the header only for JPEG bytes."""
  if not encoded:
    return tf.shape(image)[:2]
  return tf.cond(
    tf.io.is_jpeg(image), lambda: tf.image.extract_jpeg_shape(image)[:2], lambda: tf.shape(decode(image))[:2]
  )


def _crop(image: tf.Tensor, box: tf.Tensor, encoded: bool) -> tf.Tensor:
  """The window box = [top, left, height, width] of an image; JPEG bytes are decoded only inside it."""
  if not encoded:
    return tf.slice(image, [box[0], box[1], 0], [box[2], box[3], -1])
  return tf.cond(
    tf.io.is_jpeg(image),
    lambda: tf.image.decode_and_crop_jpeg(image, box, channels=3),
    lambda: tf.slice(decode(image), [box[0], box[1], 0], [box[2], box[3], -1]),
  )


def resize(image: tf.Tensor, size, method: str) -> tf.Tensor:
  """uint8 [h, w, C] -> uint8 [size[0], size[1], C], antialiased (like PIL), rounded and clipped."""
  resized = tf.image.resize(image, size, method=method, antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def random_resized_crop_box(height, width, seed: tf.Tensor, scale: tuple[float, float]) -> tf.Tensor:
  """torchvision's RandomResizedCrop.get_params: [top, left, h, w] (int32) from a stateless seed [2].

  Ten candidate boxes with area in scale * H * W and log-uniform aspect ratio in [3/4, 4/3]; the first
  that fits is placed uniformly; if none fits, the centre crop with the ratio clamped to that range.
  """
  area_seed, ratio_seed, top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
  height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  areas = height_f * width_f * tf.random.stateless_uniform([_TRIES], area_seed, scale[0], scale[1])
  ratios = tf.exp(tf.random.stateless_uniform([_TRIES], ratio_seed, math.log(_RATIO[0]), math.log(_RATIO[1])))
  widths = tf.cast(tf.round(tf.sqrt(areas * ratios)), tf.int32)  # round half to even, as Python's round.
  heights = tf.cast(tf.round(tf.sqrt(areas / ratios)), tf.int32)
  fits = (widths > 0) & (widths <= width) & (heights > 0) & (heights <= height)
  first = tf.argmax(tf.cast(fits, tf.int32))

  def sampled():
    h, w = heights[first], widths[first]
    top = tf.random.stateless_uniform([], top_seed, 0, height - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], left_seed, 0, width - w + 1, dtype=tf.int32)
    return tf.stack([top, left, h, w])

  def centre():
    in_ratio = width_f / height_f
    h = tf.where(in_ratio < _RATIO[0], tf.cast(tf.round(width_f / _RATIO[0]), tf.int32), height)
    w = tf.where(in_ratio > _RATIO[1], tf.cast(tf.round(height_f * _RATIO[1]), tf.int32), width)
    h, w = tf.minimum(h, height), tf.minimum(w, width)
    return tf.stack([(height - h) // 2, (width - w) // 2, h, w])

  return tf.cond(tf.reduce_any(fits), sampled, centre)


def train_image(image: tf.Tensor, seed: tf.Tensor, data_config, size: int, encoded: bool) -> tf.Tensor:
  """One training image, augmented as `data_config.augment` says, from a stateless seed [2]."""
  crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  if data_config.augment == "random_resized_crop":
    shape = _shape(image, encoded)
    box = random_resized_crop_box(shape[0], shape[1], crop_seed, tuple(data_config.crop_scale))
    image = resize(_crop(image, box, encoded), [size, size], data_config.resize_method)
  else:
    image = decode(image) if encoded else image
    padding = data_config.crop_padding
    if padding:
      padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]], mode="REFLECT")
      image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
  if data_config.flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
  policy = rand_augment.Policy.from_config(data_config, "randaugment")
  if policy.num_ops:
    image = rand_augment.rand_augment(image, tf.random.experimental.stateless_fold_in(seed, 1), policy)
  cut = rand_augment.CutoutOptions.from_config(data_config, "cutout")
  if cut.size:
    cutout_seed = tf.random.experimental.stateless_fold_in(seed, 2)
    image = rand_augment.cutout(image, cutout_seed, cut.size, cut.fill, cut.prob)
  return image


def eval_image(image: tf.Tensor, size: int, resize_to: int, method: str, encoded: bool) -> tf.Tensor:
  """Decode, resize the shorter side to `resize_to` (kept when already so), centre crop size x size.

  The longer side becomes int(resize_to * long / short), and the crop's top-left corner is
  round((H - size) / 2), as torchvision's Resize and CenterCrop do.
  """
  image = decode(image) if encoded else image
  shape = tf.shape(image)[:2]
  short = tf.minimum(shape[0], shape[1])
  scaled = shape * resize_to // short  # int(resize_to * side / short) for both sides.
  image = tf.cond(tf.equal(short, resize_to), lambda: image, lambda: resize(image, scaled, method))
  shape = tf.shape(image)[:2]
  top = tf.cast(tf.round((shape[0] - size) / 2), tf.int32)
  left = tf.cast(tf.round((shape[1] - size) / 2), tf.int32)
  return tf.slice(image, [top, left, 0], [size, size, -1])
