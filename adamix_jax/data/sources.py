"""Where a run's examples come from: one random-access `Split` per split, whatever the dataset's source.

    dataset = open_dataset(options)      # options: DataOptions; the splits: `splits.py`
    info = data_info(config)             # what the model and the loop need to know

Sources: the embedded dataset and numpy arrays registered from Python (`register_arrays`) are held in
memory; image folders list their files (`image_folder`); prepared tensorflow-datasets are read as
ArrayRecord through `tfds.data_source` (`tfds_source`), without TensorFlow. A split whose images all have
one size is decoded once into host memory (uint8; CIFAR's 50,000 images take 150 MB) when the pipeline
first reads it; other splits hand out encoded bytes, decoded where they are cropped.
"""

import dataclasses
import functools
import os

import numpy as np

from adamix_jax.config import ConfigError
from adamix_jax.data import fashion_mnist_subset, image_folder
from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.options import DataOptions
from adamix_jax.data.splits import DataNotPreparedError, Dataset, Split, normalisation

IN_MEMORY_BYTES = 4 << 30  # A folder of one image size up to this many decoded bytes is held in memory.


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What the model and the loop need to know about the data of a run.

  Attributes:
    num_classes: classes of the label feature.
    image_shape: (H, W, C) of one image as the model sees it.
    num_train: examples in the (possibly truncated) training split, all processes.
    num_eval: examples in the evaluation split, all processes.
    mean: per-channel mean of images in [0, 1].
    std: per-channel standard deviation of images in [0, 1].
    class_names: the name of each label, where the dataset has them (pictures); () otherwise.
  """

  num_classes: int
  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  class_names: tuple[str, ...] = ()


# numpy arrays registered from Python: name -> {split: (images, labels)}, class names.
_ARRAYS: dict[str, tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]] = {}


def register_arrays(
  name: str,
  train: tuple[np.ndarray, np.ndarray],
  test: tuple[np.ndarray, np.ndarray],
  *,
  class_names: tuple[str, ...] = (),
  mean: tuple[float, ...] = (),
  std: tuple[float, ...] = (),
) -> None:
  """Makes numpy arrays a dataset a config can name (`config.data.name = name`), in this process.

  Args:
    name: the dataset's name (not one of the built-in datasets).
    train, test: (images, labels): images uint8 [N, H, W] or [N, H, W, C] (C = 1 or 3, square H = W),
      labels integer [N] in [0, classes).
    class_names: one per class (default: the numbers).
    mean, std: per-channel normalisation in [0, 1]; () computes them from the training images.

  Raises:
    ValueError: the arrays have the wrong dtype, rank or shape, or disagree with each other.
  """
  if name in DATASETS and DATASETS[name].source != "arrays":
    raise ValueError(f"{name!r} is a built-in dataset: register your arrays under another name.")
  splits = {}
  for split, (images, labels) in (("train", train), ("test", test)):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3:
      images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(
        f"{split} images must be uint8 [N, H, W] or [N, H, W, C] with C = 1 or 3, not {images.dtype} "
        f"{list(images.shape)}: scale float images to 0..255 and cast them to uint8."
      )
    if images.shape[1] != images.shape[2]:
      raise ValueError(f"{split} images must be square, not {images.shape[1]} x {images.shape[2]}.")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
      raise ValueError(
        f"{split} labels must be non-negative integers [{len(images)}], one per image, not {labels.dtype} "
        f"{list(labels.shape)}."
      )
    splits[split] = (np.ascontiguousarray(images), labels.astype(np.int32))
  if splits["train"][0].shape[1:] != splits["test"][0].shape[1:]:
    raise ValueError(
      f"train images are {list(splits['train'][0].shape[1:])} but test images {list(splits['test'][0].shape[1:])}."
    )
  num_classes = int(max(splits["train"][1].max(initial=0), splits["test"][1].max(initial=0))) + 1
  names = tuple(class_names) or tuple(str(i) for i in range(num_classes))
  if len(names) < num_classes:
    raise ValueError(f"{len(names)} class names for labels up to {num_classes - 1}.")
  _ARRAYS[name] = splits, names
  DATASETS[name] = DatasetSpec(name, tuple(mean), tuple(std), source="arrays", image_size=images.shape[1])
  open_dataset.cache_clear()


def _data_dir(options: DataOptions) -> str:
  """The data directory: data.data_dir, $TFDS_DATA_DIR, or ~/tensorflow_datasets (as tfds)."""
  default = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
  return options.data_dir or os.environ.get("TFDS_DATA_DIR") or default


def _open_arrays(spec: DatasetSpec, options: DataOptions) -> Dataset:
  if spec.source == "embedded":
    arrays = fashion_mnist_subset.load_arrays()
    splits = {s: (arrays[f"{s}_images"][..., None], arrays[f"{s}_labels"].astype(np.int32)) for s in ("train", "test")}
    names = fashion_mnist_subset.CLASS_NAMES
  else:
    splits, names = _ARRAYS[options.name]

  def open_split(name: str) -> Split:
    if name not in splits:
      raise ConfigError(f"{spec.name or options.name!r} has the splits 'train' and 'test', not {name!r}.")
    images, labels = splits[name]
    return Split(labels, images=images)

  images = splits["train"][0]
  mean, std = normalisation(options, spec, lambda: open_split("train"), images.shape[-1])
  return Dataset(spec, names, images.shape[-1], images.shape[1], mean, std, open_split, lambda s: len(splits[s][1]))


def _read_file(paths: tuple[str, ...], labels: np.ndarray, index: int) -> tuple[bytes, int]:
  with open(paths[index], "rb") as f:
    return f.read(), int(labels[index])


def _open_folder(spec: DatasetSpec, options: DataOptions) -> Dataset:
  root = os.path.join(_data_dir(options), spec.name) if spec.name else options.data_dir
  if not spec.name and not options.data_dir:
    raise ConfigError(
      "config.data.name = 'image_folder' reads config.data.data_dir/<split>/<class>/<image>: set config.data.data_dir."
    )
  train_split, eval_split = options.splits(spec)
  try:
    classes = image_folder.class_names(root, train_split)
    splits = {s: image_folder.list_split(root, s, classes) for s in dict.fromkeys((train_split, eval_split))}
  except image_folder.FolderLayoutError as error:
    hint = spec.prepare_hint.replace("DIR", root if not spec.name else os.path.dirname(root))
    raise DataNotPreparedError(f"The image folder {root} cannot be read: {error}\n{hint}") from None
  shapes = {s: image_folder.scan(files.paths, options.worker_count) for s, files in splits.items()}
  every = np.concatenate(list(shapes.values()))
  channels = options.channels or image_folder.channel_count(every, root, splits[train_split].paths)
  one_size = len(np.unique(every[:, :2], axis=0)) == 1
  image_size = int(every[0, 0]) if one_size and every[0, 0] == every[0, 1] else 0
  fits = int(every[:, 0] @ every[:, 1]) * channels <= IN_MEMORY_BYTES

  def open_split(name: str) -> Split:
    files = splits[name]
    read = functools.partial(_read_file, files.paths, files.labels)
    return Split(files.labels, read=read, one_size=one_size and fits)

  mean, std = normalisation(options, spec, lambda: open_split(train_split), channels)
  return Dataset(spec, classes, channels, image_size, mean, std, open_split, lambda s: len(splits[s].paths))


@functools.lru_cache(maxsize=8)
def open_dataset(options: DataOptions) -> Dataset:
  """The dataset `options` names, opened (once per process and options).

  Raises:
    DataNotPreparedError: the data is missing (says where it looked and how to prepare it).
    ConfigError: the options do not fit the data (a split it lacks, normalisation of the wrong length).
    image_folder.UnreadableImageError: an image cannot be read, or grey and colour images are mixed.
  """
  spec = DATASETS[options.name]
  if spec.source in ("embedded", "arrays"):
    return _open_arrays(spec, options)
  if spec.source == "image_folder":
    return _open_folder(spec, options)
  from adamix_jax.data import tfds_source  # tensorflow-datasets is imported only for its datasets.

  return tfds_source.open_dataset(spec, options, _data_dir(options))


def data_info(config) -> DataInfo:
  """Reads classes and split sizes of the run's dataset; the image shape is the one the model sees.

  Raises:
    ConfigError: the images vary in size (or are not square) but the config keeps their own size.
  """
  options = DataOptions.from_config(config)
  dataset = open_dataset(options)
  size = options.image_size or dataset.image_size
  if not size:
    raise ConfigError(
      f"The images of config.data.name = {options.name!r} vary in size or are not square: set "
      "config.data.image_size (the side of the model's square input, e.g. 224) and config.data.augment = "
      "'random_resized_crop'."
    )
  if options.augment == "crop_flip" and size != dataset.image_size:
    raise ConfigError(
      f"config.data.augment = 'crop_flip' keeps the images' own size ({dataset.image_size or 'varying'}), but "
      f"config.data.image_size = {options.image_size}. Use 'random_resized_crop', or image_size 0."
    )
  limit = lambda n, cap: min(n, cap) if cap else n
  train_split, eval_split = options.splits(dataset.spec)
  return DataInfo(
    len(dataset.class_names),
    (size, size, dataset.channels),
    limit(dataset.num_examples(train_split), options.max_train_examples),
    limit(dataset.num_examples(eval_split), options.max_eval_examples),
    dataset.mean,
    dataset.std,
    tuple(dataset.class_names),
  )


def train_labels(config) -> np.ndarray:
  """int64 [N], the label of every example of the (possibly truncated) training split, in order."""
  options = DataOptions.from_config(config)
  dataset = open_dataset(options)
  split = dataset.open_split(options.splits(dataset.spec)[0]).first(options.max_train_examples)
  return split.labels().astype(np.int64)
