"""RandAugment's operations against PIL's on real images; determinism of the policy and of Cutout."""

import matplotlib.cbook
import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image, ImageEnhance, ImageOps

from adamix_jax import data
from adamix_jax.config import ConfigError
from adamix_jax.data import fashion_mnist_subset
from adamix_jax.data import rand_augment as ra
from adamix_jax.validation import validate

FILL = (128, 64, 200)


def _photo() -> np.ndarray:
  """A real RGB photograph shipped with matplotlib, cut and shrunk to 64 x 48."""
  with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
    return np.asarray(image.convert("RGB").resize((64, 48), Image.BILINEAR))


def _fashion() -> np.ndarray:
  """Three real Fashion-MNIST images as the channels of one 28 x 28 RGB image, and one grey image."""
  images = fashion_mnist_subset.load_arrays()["train_images"][:3]
  return np.stack(list(images), axis=-1)


IMAGES = {"photo": _photo(), "fashion": _fashion(), "grey": _fashion()[..., :1]}
POINTWISE = [
  ("AutoContrast", None, ImageOps.autocontrast),
  ("Equalize", None, ImageOps.equalize),
  *[("Posterize", bits, lambda im, b=bits: ImageOps.posterize(im, b)) for bits in (1, 4, 6)],
  *[("Solarize", t, lambda im, t=t: ImageOps.solarize(im, t)) for t in (0, 128, 256)],
  *[
    (name, factor, lambda im, f=factor, e=enhancer: e(im).enhance(f))
    for name, enhancer in (
      ("Brightness", ImageEnhance.Brightness),
      ("Color", ImageEnhance.Color),
      ("Contrast", ImageEnhance.Contrast),
      ("Sharpness", ImageEnhance.Sharpness),
    )
    for factor in (0.05, 0.6, 1.4, 1.95)
  ],
]


def _pil(array: np.ndarray) -> Image.Image:
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _array(image: Image.Image) -> np.ndarray:
  array = np.asarray(image)
  return array[..., None] if array.ndim == 2 else array


def _ours(name, array, value) -> np.ndarray:
  return ra.apply(name, array, value, FILL)


@pytest.mark.parametrize("image", sorted(IMAGES))
@pytest.mark.parametrize("name,value,reference", POINTWISE, ids=lambda v: v if isinstance(v, str) else None)
def test_pointwise_operations_match_pil_within_one_grey_level(image, name, value, reference):
  array = IMAGES[image]
  ours, theirs = _ours(name, array, value), _array(reference(_pil(array)))
  assert ours.shape == array.shape and ours.dtype == np.uint8
  assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, (name, value)


def _pil_affine(image: Image.Image, matrix) -> Image.Image:
  return image.transform(image.size, Image.AFFINE, matrix, Image.NEAREST, fillcolor=FILL[: len(image.getbands())])


GEOMETRIC = [
  ("Rotate", 30.0, lambda im, v: im.rotate(v, Image.NEAREST, fillcolor=FILL[: len(im.getbands())])),
  ("ShearX", 0.3, lambda im, v: _pil_affine(im, (1, v, 0, 0, 1, 0))),
  ("ShearY", 0.3, lambda im, v: _pil_affine(im, (1, 0, 0, v, 1, 0))),
  ("TranslateX", 0.3, lambda im, v: _pil_affine(im, (1, 0, round(v * im.size[0]), 0, 1, 0))),
  ("TranslateY", 0.3, lambda im, v: _pil_affine(im, (1, 0, 0, 0, 1, round(v * im.size[1])))),
]


@pytest.mark.parametrize("image", ["photo", "grey"])
@pytest.mark.parametrize("name,value,reference", GEOMETRIC, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("sign", [1, -1])
def test_geometric_operations_match_pil_direction_and_fill(image, name, value, reference, sign):
  array = IMAGES[image]
  ours = _ours(name, array, sign * value)
  theirs = _array(reference(_pil(array), sign * value))
  opposite = _array(reference(_pil(array), -sign * value))
  differs = np.any(ours != theirs, axis=-1)
  # PIL's pixel-centre convention is reproduced: at most a few pixels on rounding ties differ.
  assert differs.mean() <= 0.01, (name, differs.mean())
  assert np.abs(ours.astype(int) - theirs.astype(int)).mean() < np.abs(ours.astype(int) - opposite.astype(int)).mean()
  filled = np.all(theirs == np.array(FILL[: array.shape[-1]]), axis=-1) & np.any(array != FILL[: array.shape[-1]], -1)
  assert filled.any() and np.all(ours[filled & ~differs] == FILL[: array.shape[-1]])


def test_rand_augment_is_a_function_of_the_seed():
  image = IMAGES["photo"]
  policy = ra.Policy(num_ops=3, prob=1.0)
  run = lambda a, b: ra.rand_augment(image, np.random.default_rng([a, b]), policy)
  first = run(1, 2)
  assert first.shape == IMAGES["photo"].shape and first.dtype == np.uint8
  np.testing.assert_array_equal(first, run(1, 2))
  outputs = [run(1, seed) for seed in range(12)]
  assert len({output.tobytes() for output in outputs}) >= 10
  np.testing.assert_array_equal(ra.rand_augment(image, np.random.default_rng(1), ra.Policy(num_ops=0)), image)
  # prob 0: every drawn operation is skipped.
  np.testing.assert_array_equal(ra.rand_augment(image, np.random.default_rng(1), ra.Policy(prob=0.0)), image)


def test_rand_augment_draws_every_operation_with_its_full_magnitude():
  """At the top level with prob 1 and one operation, each output is one of the 14 operations' results."""
  image = IMAGES["photo"]
  policy = ra.Policy(num_ops=1, prob=1.0)
  candidates = {}
  for name in ra.FIXMATCH_OPERATIONS:
    for negate in (False, True):
      value = ra.operation_value(name, negate, policy.level, policy)
      candidates.setdefault(ra.apply(name, image, value, policy.fill).tobytes(), name)
  seen = set()
  for seed in range(120):
    output = ra.rand_augment(image, np.random.default_rng([7, seed]), policy).tobytes()
    assert output in candidates
    seen.add(candidates[output])
  # Posterize at 8 bits is the identity (OpenMixup's FixMatch range ends at 8), and Solarize at threshold 0
  # inverts every pixel: both are among the candidates.
  assert len(seen) >= 12


def test_cutout_fills_one_square_and_is_deterministic():
  image = IMAGES["photo"]
  rng = lambda: np.random.default_rng([3, 4])
  out = ra.cutout(image, rng(), size=8, fill=FILL)
  changed = np.any(out != IMAGES["photo"], axis=-1)
  rows, cols = np.where(np.all(out == FILL, axis=-1))
  assert 0 < changed.sum() <= 64 and rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8
  np.testing.assert_array_equal(out, ra.cutout(image, rng(), size=8, fill=FILL))
  np.testing.assert_array_equal(ra.cutout(image, rng(), size=8, fill=FILL, prob=0.0), image)


def test_training_pipeline_applies_rand_augment_and_cutout_deterministically(tfds_dir):
  options = {"data.randaugment.num_ops": 2, "data.randaugment.prob": 1.0, "data.cutout.size": 8}
  config = tiny_config(tfds_dir, **options)
  validate(config, 1)
  info = data.data_info(config)
  first = next(data.InputPipeline(config, info).train_batches(0))
  again = next(data.InputPipeline(config, info).train_batches(0))
  plain = next(data.InputPipeline(tiny_config(tfds_dir), info).train_batches(0))
  np.testing.assert_array_equal(first["images"], again["images"])
  np.testing.assert_array_equal(first["labels"], plain["labels"])  # Same order and crops; then augmented.
  changed = np.mean(np.any(first["images"] != plain["images"], axis=(1, 2, 3)))
  assert changed > 0.9 and first["images"].dtype == np.uint8


@pytest.mark.parametrize(
  "key,value,message",
  [
    ("data.randaugment.operations", ("Rotate", "Invert"), "Valid choices: AutoContrast"),
    ("data.randaugment.level", 31.0, "exceeds max_level"),
    ("data.randaugment.prob", 1.5, "must lie in \\[0, 1\\]"),
    ("data.cutout.fill", (0, 0), "three values in \\[0, 255\\]"),
  ],
)
def test_bad_augmentation_options_are_rejected(tfds_dir, key, value, message):
  with pytest.raises(ConfigError, match=message):
    validate(tiny_config(tfds_dir, **{key: value}), 1)


def test_level_std_draws_each_operations_level_around_the_level_within_its_range():
  """timm's / OpenMixup's magnitude_std: Rotate at level 7 of 10, one operation always applied."""
  image = IMAGES["photo"]

  def outputs(level_std):
    policy = ra.Policy(num_ops=1, level=7.0, max_level=10.0, prob=1.0, negate_prob=0.0, operations=("Rotate",),
                       level_std=level_std)  # fmt: skip
    return {ra.rand_augment(image, np.random.default_rng([3, seed]), policy).tobytes() for seed in range(24)}

  assert len(outputs(0.0)) == 1
  assert len(outputs(0.5)) > 12  # A different angle almost every time.
  ends = {ra.apply("Rotate", image, degrees, (128, 128, 128)).tobytes() for degrees in (0.0, 30.0)}
  assert outputs(1e6) <= ends  # Clipped to [0, max_level]: 0 or 30 degrees.
