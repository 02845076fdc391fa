"""The datasets a config can name, with what the input pipeline needs to know about each."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A dataset served by tensorflow-datasets.

  Attributes:
    tfds_name: the tfds builder name (and version, if pinned).
    mean, std: per-channel normalisation of images scaled to [0, 1].
    train_split, eval_split: tfds split names.
    embedded: ships inside the package; prepared locally on first use, never downloaded.
    prepare_hint: how to prepare it on a machine without internet.
  """

  tfds_name: str
  mean: tuple[float, ...]
  std: tuple[float, ...]
  train_split: str = "train"
  eval_split: str = "test"
  embedded: bool = False
  prepare_hint: str = ""


_CIFAR_HINT = (
  "On a machine with internet, run `tfds build {name} --data_dir DIR` (or start this training there once) "
  "and copy DIR to this machine. Offline, put the official archive {archive} in DIR/downloads/manual/ and run "
  "`tfds build {name} --data_dir DIR --manual_dir DIR/downloads/manual`."
)

DATASETS: dict[str, DatasetSpec] = {
  "fashion_mnist_subset": DatasetSpec("fashion_mnist_subset", mean=(0.2860,), std=(0.3530,), embedded=True),
  "cifar10": DatasetSpec(
    "cifar10:3.0.2",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.201),
    prepare_hint=_CIFAR_HINT.format(name="cifar10", archive="cifar-10-binary.tar.gz"),
  ),
  "cifar100": DatasetSpec(
    "cifar100:3.0.2",
    mean=(0.4914, 0.4822, 0.4465),  # The official AdAutoMix/OpenMixup CIFAR-100 values (ADAUTOMIX.md A.4).
    std=(0.2023, 0.1994, 0.201),
    prepare_hint=_CIFAR_HINT.format(name="cifar100", archive="cifar-100-binary.tar.gz"),
  ),
}
