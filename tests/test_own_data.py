"""A user's own images: an image folder (`data.name = "image_folder"`) and numpy arrays registered from Python.

The folders hold real images (the embedded Fashion-MNIST subset written out as PNG and JPEG files).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image

from adamix_jax import data, train
from adamix_jax.config import ConfigError
from adamix_jax.data import fashion_mnist_subset
from adamix_jax.experiment import make_experiment
from adamix_jax.sharding import make_mesh
from adamix_jax.validation import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARRAYS = fashion_mnist_subset.load_arrays()
NAMES = ("coat", "sneaker", "trouser")  # Sorted: the labels are 0, 1, 2 in this order.
SOURCE_LABELS = (4, 7, 1)  # Their Fashion-MNIST labels.


def write_folder(root, per_class=(("train", 40), ("test", 10)), colour=False, sizes=None, names=NAMES):
  """ROOT/<split>/<class>/<n>.png of real Fashion-MNIST images of three classes (grey, or colour)."""
  for split, count in per_class:
    source = "train" if split == "train" else "test"
    for name, label in zip(names, SOURCE_LABELS, strict=False):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      images = ARRAYS[f"{source}_images"][ARRAYS[f"{source}_labels"] == label][:count]
      for index, image in enumerate(images):
        picture = Image.fromarray(image).convert("RGB" if colour else "L")
        if sizes:
          picture = picture.resize(sizes[index % len(sizes)])
        picture.save(os.path.join(root, split, name, f"{index:03d}.png"))
  return str(root)


def _config(root, **overrides):
  settings = {"data.name": "image_folder", "data.max_train_examples": 0, "data.max_eval_examples": 0}
  return tiny_config(str(root), **{**settings, **overrides})


def test_a_grey_folder_gets_its_classes_shape_and_normalisation_from_the_images(tmp_path):
  root = write_folder(tmp_path / "mine")
  info = data.data_info(_config(root))
  assert info.class_names == NAMES and info.num_classes == 3
  assert (info.image_shape, info.num_train, info.num_eval) == ((28, 28, 1), 120, 30)
  train_images = np.concatenate([ARRAYS["train_images"][ARRAYS["train_labels"] == k][:40] for k in SOURCE_LABELS])
  np.testing.assert_allclose(info.mean, [train_images.mean() / 255], atol=1e-4)  # From the training split only.
  np.testing.assert_allclose(info.std, [train_images.std() / 255], atol=1e-4)
  batches = list(data.InputPipeline(_config(root), info).train_batches(0))
  assert len(batches) == 6 and batches[0]["images"].shape == (20, 28, 28, 1)
  assert sorted(np.concatenate([b["labels"] for b in batches])) == sorted(np.repeat([0, 1, 2], 40))
  given = data.data_info(_config(root, **{"data.mean": (0.5,), "data.std": (0.25,)}))
  assert (given.mean, given.std) == ((0.5,), (0.25,))


def test_a_colour_folder_of_varied_sizes_needs_an_input_size_and_then_trains(tmp_path):
  root = write_folder(tmp_path / "mine", colour=True, sizes=[(40, 30), (28, 28), (33, 51)])
  with pytest.raises(ConfigError, match="vary in size or are not square: set config.data.image_size"):
    data.data_info(_config(root))
  config = _config(root, **{"data.image_size": 24, "data.augment": "random_resized_crop"})
  info = data.data_info(config)
  assert info.image_shape == (24, 24, 3) and len(info.mean) == 3
  pipeline = data.InputPipeline(config, info)
  batch = next(pipeline.train_batches(0))
  assert batch["images"].shape == (20, 24, 24, 3)
  evaluated = list(pipeline.eval_batches())
  assert sum(int(b["mask"].sum()) for b in evaluated) == 30 and evaluated[0]["images"].shape[1:] == (24, 24, 3)


def test_split_names_are_configurable(tmp_path):
  root = write_folder(tmp_path / "mine", per_class=(("training", 20), ("validation", 5)))
  with pytest.raises(data.DataNotPreparedError, match="test does not exist"):
    data.data_info(_config(root, **{"data.train_split": "training"}))
  info = data.data_info(_config(root, **{"data.train_split": "training", "data.eval_split": "validation"}))
  assert (info.num_train, info.num_eval) == (60, 15)


def test_bad_folders_get_one_line_errors_that_say_what_to_do(tmp_path):
  empty = write_folder(tmp_path / "empty")
  os.makedirs(os.path.join(empty, "train", "zebra"))
  with pytest.raises(data.DataNotPreparedError, match="zebra holds no images .* every class needs at least one"):
    data.data_info(_config(empty))

  broken = write_folder(tmp_path / "broken")
  with open(os.path.join(broken, "train", "coat", "999.png"), "wb") as f:
    f.write(b"not a picture")
  with pytest.raises(data.UnreadableImageError, match=r"coat/999.png is not a readable image .* Remove or replace"):
    data.data_info(_config(broken))

  mixed = write_folder(tmp_path / "mixed")
  write_folder(tmp_path / "mixed", per_class=(("train", 3),), colour=True, names=("coat_colour",) * 3)
  with pytest.raises(data.UnreadableImageError, match="mixes 150 grey and 3 colour images .*data.channels = 3"):
    data.data_info(_config(mixed))
  assert data.data_info(_config(mixed, **{"data.channels": 3})).image_shape == (28, 28, 3)

  with pytest.raises(ConfigError, match="set config.data.data_dir"):
    data.data_info(_config(""))
  small = write_folder(tmp_path / "small", per_class=(("train", 3), ("test", 2)))
  config = _config(small)
  with pytest.raises(ConfigError, match="exceed the 9 training examples: an epoch would have no step"):
    make_experiment(config, data.data_info(config), make_mesh(1))
  vit = _config(write_folder(tmp_path / "vit"), **{"model.name": "deit_s", "method": "deit"})
  validate(vit, 1)  # The folder's image size is not known before it is read ...
  with pytest.raises(ConfigError, match="patch size 16"):  # ... and is checked, before compiling, once it is.
    make_experiment(vit, data.data_info(vit), make_mesh(1))


def test_numpy_arrays_registered_from_python_are_a_dataset(tmp_path):
  images, labels = ARRAYS["train_images"][:300], ARRAYS["train_labels"][:300]
  data.register_arrays("my_arrays", train=(images, labels), test=(images[:50], labels[:50]))
  config = tiny_config(str(tmp_path), **{"data.name": "my_arrays", "data.max_train_examples": 0})
  info = data.data_info(config)
  assert (info.num_classes, info.image_shape, info.num_train, info.num_eval) == (10, (28, 28, 1), 300, 50)
  np.testing.assert_allclose(info.mean, [images.mean() / 255], atol=1e-4)
  batch = next(data.InputPipeline(config, info).train_batches(0))
  assert batch["images"].shape == (20, 28, 28, 1)
  with pytest.raises(ValueError, match="must be uint8 .* cast them to uint8"):
    data.register_arrays("bad", train=(images / 255.0, labels), test=(images, labels))
  with pytest.raises(ValueError, match="one per image"):
    data.register_arrays("bad", train=(images, labels[:-1]), test=(images, labels))
  with pytest.raises(ValueError, match="built-in dataset"):
    data.register_arrays("cifar10", train=(images, labels), test=(images, labels))


@pytest.mark.slow
def test_training_on_numpy_arrays_from_python(tmp_path):
  images, labels = ARRAYS["train_images"][:400], ARRAYS["train_labels"][:400]
  data.register_arrays(
    "python_arrays", train=(images, labels), test=(ARRAYS["test_images"][:100], ARRAYS["test_labels"][:100])
  )
  config = tiny_config(str(tmp_path), **{"data.name": "python_arrays", "data.max_train_examples": 0, "num_epochs": 1})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["steps"] == 20 and summary["last_eval"] is not None


@pytest.mark.slow
def test_training_on_an_image_folder_from_the_command_line_keeps_its_normalisation(tmp_path):
  root = write_folder(tmp_path / "mine")
  workdir = tmp_path / "run"
  command = [
    sys.executable, "-m", "adamix_jax.main", "--config", "configs/quickstart.py", "--workdir", str(workdir),
    "--config.data.name=image_folder", f"--config.data.data_dir={root}", "--config.num_epochs=1",
    "--config.model.width=4", "--config.batch_size=20", "--config.num_devices=1", "--config.log.progress=False",
  ]  # fmt: skip
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Normalisation computed from the training images" in result.stdout
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["steps"] == 6
  resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0 and "Normalisation computed" not in resumed.stdout  # Read back from the run.


def test_a_semi_supervised_run_reads_a_folder_of_varied_sizes(tmp_path):
  root = write_folder(tmp_path / "mine", colour=True, sizes=[(40, 30), (28, 28), (33, 51)])
  settings = {
    "method": "fixmatch", "semisup.num_labeled": 12, "semisup.unlabeled_ratio": 2, "batch_size": 4,
    "data.image_size": 24, "data.augment": "random_resized_crop",
  }  # fmt: skip
  config = _config(root, **settings)
  validate(config, 1)
  info = data.data_info(config)
  labels = data.sources.train_labels(config)
  indices = data.labeled_subset.choose_balanced(labels, 12, 3, seed=0)
  pipeline = data.SubsetPipeline(config, info, indices, 10, unlabeled=True)
  batch = next(pipeline.train_batches(0))
  assert batch["images"].shape == (4, 24, 24, 3) and batch["weak"].shape == batch["strong"].shape == (8, 24, 24, 3)
  assert set(batch["labels"]) <= set(labels[indices])  # Only labeled examples in the labeled stream.
  again = next(data.SubsetPipeline(config, info, indices, 10, unlabeled=True).train_batches(0))
  for key in batch:
    np.testing.assert_array_equal(batch[key], again[key])
