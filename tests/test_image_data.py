"""Image-folder datasets, RandomResizedCrop, resize-and-centre-crop evaluation, Tiny-ImageNet preparation."""

import io
import math
import os

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image

from adamix_jax import data
from adamix_jax.config import ConfigError
from adamix_jax.data import augment
from adamix_jax.data.options import DataOptions
from adamix_jax.data.prepare_tiny_imagenet import prepare
from adamix_jax.validation import validate

CLASSES = ("boeing", "airbus", "cessna")


def encode(image: np.ndarray, format: str = "PNG", **options) -> bytes:
  """uint8 [H, W, C] -> the bytes of an image file (PIL)."""
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format, **options)
  return buffer.getvalue()


def write_image(path, image: np.ndarray, **options) -> None:
  with open(path, "wb") as f:
    f.write(encode(image, "JPEG" if str(path).lower().endswith((".jpg", ".jpeg")) else "PNG", **options))


def write_folder_dataset(root, splits=(("trainval", 10), ("test", 4)), seed=0):
  """Images of varied sizes (JPEG and PNG) in root/<split>/<class>/; the class sets the mean colour."""
  rng = np.random.default_rng(seed)
  for split, per_class in splits:
    for label, name in enumerate(CLASSES):
      os.makedirs(os.path.join(root, split, name))
      for index in range(per_class):
        height, width = rng.integers(36, 90, size=2)
        image = np.clip(rng.normal(60 + 70 * label, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        write_image(os.path.join(root, split, name, f"{index:03d}.{'jpg' if index % 2 else 'png'}"), image)


@pytest.fixture(scope="module")
def folder_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("folders")
  write_folder_dataset(str(directory / "fgvc_aircraft"))
  return str(directory)


def _folder_config(data_dir, **overrides):
  defaults = {
    "data.name": "fgvc_aircraft", "data.augment": "random_resized_crop", "data.image_size": 32,
    "data.eval_resize": 36, "data.max_train_examples": 0, "data.max_eval_examples": 0, "batch_size": 6,
    "eval_batch_size": 4,
  }  # fmt: skip
  return tiny_config(data_dir, **{**defaults, **overrides})


def test_folder_dataset_info_and_batches(folder_dir):
  config = _folder_config(folder_dir)
  validate(config, 1)
  info = data.data_info(config)
  assert (info.num_classes, info.image_shape, info.num_train, info.num_eval) == (3, (32, 32, 3), 30, 12)
  pipeline = data.InputPipeline(config, info)
  batches = list(pipeline.train_batches(0))
  assert len(batches) == 5 and batches[0]["images"].shape == (6, 32, 32, 3)
  labels = np.concatenate([b["labels"] for b in batches])
  assert sorted(labels) == sorted(np.repeat([0, 1, 2], 10))  # An exact permutation; names sorted to labels.
  means = [np.mean(np.concatenate([b["images"][b["labels"] == k] for b in batches])) for k in range(3)]
  assert means[1] < means[0] < means[2]  # Labels follow the sorted names: airbus 130, boeing 60, cessna 200.
  resumed = list(data.InputPipeline(config, info).train_batches(0, start_batch=3))
  for a, b in zip(batches[3:], resumed, strict=True):
    assert np.array_equal(a["images"], b["images"])


def test_folder_evaluation_covers_every_image_once_across_processes(folder_dir):
  config = _folder_config(folder_dir)
  info = data.data_info(config)
  seen = []
  for index in range(2):
    for batch in data.InputPipeline(config, info, process_index=index, process_count=2).eval_batches():
      assert batch["images"].shape == (2, 32, 32, 3)
      seen += list(batch["labels"][batch["mask"]])
  assert sorted(seen) == sorted(np.repeat([0, 1, 2], 4))


def test_missing_folder_dataset_names_the_layout_and_the_tool(tmp_path):
  config = _folder_config(str(tmp_path), **{"data.name": "tiny_imagenet", "data.image_size": 0, "data.eval_resize": 0})
  with pytest.raises(data.DataNotPreparedError) as error:
    data.data_info(config)
  message = str(error.value)
  assert str(tmp_path / "tiny_imagenet") in message and "{train,val}/<class>/<image>" in message
  assert "python -m adamix_jax.data.prepare_tiny_imagenet" in message


def _torchvision_box(height, width, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """torchvision.transforms.RandomResizedCrop.get_params, with numpy's generator."""
  for _ in range(10):
    area = height * width * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
    if 0 < w <= width and 0 < h <= height:
      return rng.integers(0, height - h + 1), rng.integers(0, width - w + 1), h, w
  raise AssertionError("not reached for these shapes")


def test_random_resized_crop_box_follows_torchvision():
  height, width = 60, 90
  draws = np.random.default_rng(1).random((600, augment.CROP_DRAWS))
  boxes = np.array([augment.random_resized_crop_box(height, width, d, (0.08, 1.0)) for d in draws])
  top, left, h, w = boxes.T
  assert np.all((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width))
  rng = np.random.default_rng(0)
  reference = np.array([_torchvision_box(height, width, rng) for _ in range(4000)])
  for ours, theirs in ((h * w, reference[:, 2] * reference[:, 3]), (w / h, reference[:, 3] / reference[:, 2])):
    for q in (0.1, 0.5, 0.9):  # The same distribution (rejections of boxes that do not fit included).
      assert abs(np.quantile(ours, q) - np.quantile(theirs, q)) < 0.08 * np.quantile(theirs, 0.9)
  again = augment.random_resized_crop_box(height, width, draws[5], (0.08, 1.0))
  assert np.array_equal(again, boxes[5])
  # No candidate fits a 10 x 100 strip at scale >= 0.9: the centre crop with the ratio clamped to 4/3.
  box = augment.random_resized_crop_box(10, 100, draws[0], (0.9, 1.0))
  assert list(box) == [0, (100 - 13) // 2, 10, 13]


def test_eval_image_resizes_the_shorter_side_then_centre_crops():
  image = np.arange(50 * 40 * 3, dtype=np.int64).reshape(50, 40, 3) % 251
  image = image.astype(np.uint8)
  out = augment.eval_image(image, 32, 40, "bilinear", channels=3)
  assert np.array_equal(out, image[9:41, 4:36])  # Short side already 40: only the crop, round((50-32)/2) = 9.
  resized = augment.eval_image(encode(image), 24, 30, "bicubic", channels=3)
  assert resized.shape == (24, 24, 3) and resized.dtype == np.uint8
  # torchvision's Resize(30) + CenterCrop(24) on a PIL image: PIL's own resize, the same crop corner.
  reference = np.asarray(Image.fromarray(image).resize((30, 37), Image.BICUBIC))[6:30, 3:27]
  np.testing.assert_array_equal(resized, reference)
  flat = augment.eval_image(np.full((50, 40, 3), 77, np.uint8), 24, 30, "bicubic", channels=3)
  assert np.all(flat == 77)  # Resizing keeps a constant image constant (antialiased, rounded, clipped).


def test_random_resized_crop_view_of_encoded_and_decoded_images_agree():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
  png = encode(image)
  view = augment.View(DataOptions.from_config(_folder_config("/unused")), 32, 3)
  from_bytes = view.batch([png], np.random.default_rng(0), image_rngs=None)
  from_pixels = view.batch([image], np.random.default_rng(0), image_rngs=None)
  assert from_bytes.shape == (1, 32, 32, 3)
  np.testing.assert_array_equal(from_bytes, from_pixels)  # PNG is lossless: the same crop, the same pixels.


def test_data_configuration_errors(folder_dir):
  with pytest.raises(ConfigError, match="vary in size: set config.data.image_size"):
    validate(_folder_config(folder_dir, **{"data.name": "cub200", "data.image_size": 0}), 1)
  with pytest.raises(ConfigError, match="'crop_flip' keeps the images' own size"):
    validate(_folder_config(folder_dir, **{"data.augment": "crop_flip"}), 1)
  with pytest.raises(ConfigError, match="eval_resize = 20 is smaller than the 32-pixel centre crop"):
    validate(_folder_config(folder_dir, **{"data.eval_resize": 20}), 1)
  with pytest.raises(ConfigError, match="Valid choices: bicubic, bilinear"):
    validate(_folder_config(folder_dir, **{"data.resize_method": "lanczos"}), 1)


def test_prepare_tiny_imagenet_from_the_official_layout(tmp_path):
  source = tmp_path / "tiny-imagenet-200"
  rng = np.random.default_rng(0)
  lines = []
  for wnid in ("n01443537", "n01629819"):
    os.makedirs(source / "train" / wnid / "images")
    for index in range(3):
      image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
      write_image(source / "train" / wnid / "images" / f"{wnid}_{index}.JPEG", image)
    lines.append(f"val_{len(lines)}.JPEG\t{wnid}\t0\t0\t63\t63\n")
  os.makedirs(source / "val" / "images")
  for line in lines:
    write_image(source / "val" / "images" / line.split("\t")[0], np.zeros((64, 64, 3), np.uint8))
  (source / "val" / "val_annotations.txt").write_text("".join(lines))
  counts = prepare(str(source), str(tmp_path / "tfds" / "tiny_imagenet"))
  assert counts == {"train": 6, "val": 2}
  overrides = {"data.name": "tiny_imagenet", "data.max_train_examples": 0, "data.max_eval_examples": 0}
  config = tiny_config(str(tmp_path / "tfds"), **overrides, batch_size=2, eval_batch_size=2)
  info = data.data_info(config)
  assert (info.num_classes, info.image_shape, info.num_train, info.num_eval) == (2, (64, 64, 3), 6, 2)
  batch = next(data.InputPipeline(config, info).train_batches(0))  # crop_flip at the native 64 x 64.
  assert batch["images"].shape == (2, 64, 64, 3)
  with pytest.raises(FileNotFoundError, match="not an extracted tiny-imagenet-200 archive"):
    prepare(str(tmp_path), str(tmp_path / "out"))
  assert math.isfinite(info.mean[0])
