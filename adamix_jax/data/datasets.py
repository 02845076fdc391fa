"""The datasets a config can name, with what the input pipeline needs to know about each."""

import dataclasses

SOURCES = ("tfds", "image_folder", "embedded", "arrays")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A dataset the input pipeline can read.

  Attributes:
    name: the tfds builder name (and version, if pinned), or the folder's name under the data directory
      ("" for the generic `image_folder`, whose root is data.data_dir itself).
    mean: per-channel mean of images scaled to [0, 1]; () when computed from the training split
      (`image_folder`, arrays given without them).
    std: per-channel standard deviation, likewise.
    source: "tfds" (prepared tensorflow-datasets, read as ArrayRecord), "image_folder"
      (ROOT/<split>/<class>/<image>, see data.image_folder), "embedded" (ships in the package) or "arrays"
      (numpy arrays registered from Python, `data.register_arrays`).
    image_size: side of every image when all have the same square size; 0 when sizes vary (the config's
      data.image_size then sets the crop) or are found when the data is read (folders, arrays).
    train_split: the training split's name (a tfds split or a sub-folder).
    eval_split: the evaluation split's name.
    prepare_hint: how to prepare it on a machine without internet; DIR stands for the data directory.
  """

  name: str
  mean: tuple[float, ...]
  std: tuple[float, ...]
  source: str = "tfds"
  image_size: int = 0
  train_split: str = "train"
  eval_split: str = "test"
  prepare_hint: str = ""


PREPARE_INSTALL = 'pip install "adamix_jax[prepare]"'  # TensorFlow: needed once, to prepare a tfds dataset.
_TFDS_BUILD = "python -m adamix_jax.data.prepare {name} --data_dir DIR"
_CIFAR_HINT = (
  f"Prepare it once (TensorFlow is needed for this only: `{PREPARE_INSTALL}`): `{_TFDS_BUILD}` on a machine "
  "with internet (or start this training there once), then copy DIR here. Offline, put the official archive "
  f"{{archive}} in DIR/downloads/manual/ and run `{_TFDS_BUILD} --manual_dir DIR/downloads/manual`."
)
_FOLDER_HINT = (
  "tensorflow-datasets has no builder for it: lay the images out as DIR/{name}/{{{train},{eval}}}/<class>/<image>. "
)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.201)  # OpenMixup's CIFAR values (A.4).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

DATASETS: dict[str, DatasetSpec] = {
  "fashion_mnist_subset": DatasetSpec(
    "fashion_mnist_subset", mean=(0.2860,), std=(0.3530,), source="embedded", image_size=28
  ),
  "image_folder": DatasetSpec(
    "",
    mean=(),
    std=(),
    source="image_folder",
    prepare_hint="Lay your images out as DIR/<split>/<class>/<image> (split names: config.data.train_split and "
    "config.data.eval_split, 'train' and 'test' by default) and set config.data.data_dir = DIR.",
  ),
  "cifar10": DatasetSpec(
    "cifar10:3.0.2",
    CIFAR_MEAN,
    CIFAR_STD,
    image_size=32,
    prepare_hint=_CIFAR_HINT.format(name="cifar10", archive="cifar-10-binary.tar.gz"),
  ),
  "cifar100": DatasetSpec(
    "cifar100:3.0.2",
    CIFAR_MEAN,
    CIFAR_STD,
    image_size=32,
    prepare_hint=_CIFAR_HINT.format(name="cifar100", archive="cifar-100-binary.tar.gz"),
  ),
  "tiny_imagenet": DatasetSpec(
    "tiny_imagenet",
    mean=(0.480, 0.448, 0.398),  # OpenMixup's Tiny-ImageNet normalisation.
    std=(0.272, 0.265, 0.274),
    source="image_folder",
    image_size=64,
    eval_split="val",
    prepare_hint=_FOLDER_HINT.format(name="tiny_imagenet", train="train", eval="val")
    + "From the official tiny-imagenet-200.zip (extracted to SRC): "
    "`python -m adamix_jax.data.prepare_tiny_imagenet SRC DIR/tiny_imagenet`.",
  ),
  "imagenet2012": DatasetSpec(
    "imagenet2012",
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_split="validation",
    prepare_hint="ImageNet cannot be downloaded automatically. Put ILSVRC2012_img_train.tar and "
    "ILSVRC2012_img_val.tar (from image-net.org) in DIR/downloads/manual/ and run "
    f"`{_TFDS_BUILD.format(name='imagenet2012')} --manual_dir DIR/downloads/manual` (once; about 150 GB; "
    f"TensorFlow is needed for this only: `{PREPARE_INSTALL}`).",
  ),
  "cub200": DatasetSpec(
    "caltech_birds2011",
    IMAGENET_MEAN,
    IMAGENET_STD,
    prepare_hint=f"On a machine with internet, run `{PREPARE_INSTALL}` and "
    f"`{_TFDS_BUILD.format(name='cub200')}`, and copy DIR here (the official 5,994 / 5,794 train / "
    "test split).",
  ),
  "fgvc_aircraft": DatasetSpec(
    "fgvc_aircraft",
    IMAGENET_MEAN,
    IMAGENET_STD,
    source="image_folder",
    train_split="trainval",
    prepare_hint=_FOLDER_HINT.format(name="fgvc_aircraft", train="trainval", eval="test")
    + "From fgvc-aircraft-2013b: the 100 classes are the variants; data/images_variant_trainval.txt and "
    "data/images_variant_test.txt list '<image id> <variant>' for each split (images/<image id>.jpg).",
  ),
  "stanford_cars": DatasetSpec(
    "stanford_cars",
    IMAGENET_MEAN,
    IMAGENET_STD,
    source="image_folder",
    prepare_hint=_FOLDER_HINT.format(name="stanford_cars", train="train", eval="test")
    + "The 196 classes of the official 8,144 / 8,041 split (cars_train_annos.mat, cars_test_annos_withlabels.mat).",
  ),
}
