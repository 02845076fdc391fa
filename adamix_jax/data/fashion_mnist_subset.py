"""`fashion_mnist_subset`: the embedded real-image dataset, as a tensorflow-datasets builder.

A class-balanced subset of Fashion-MNIST (MIT licence, Zalando Research): the first 1,000 training and the
first 200 test images of every class, 28x28 grey, 10 classes. It ships inside the package
(`fashion_mnist_subset.npz`, rebuilt by `tools/build_fashion_mnist_subset.py`), so preparing it needs no
network, and it goes through exactly the same input pipeline as CIFAR-100.

    import adamix_jax.data  # registers the builder
    ds = tfds.load("fashion_mnist_subset", split="train")
"""

import importlib.resources

import numpy as np
import tensorflow_datasets as tfds

CLASS_NAMES = (
  "t-shirt/top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle boot",
)


def load_arrays() -> dict[str, np.ndarray]:
  """The embedded arrays: {train,test}_images uint8 [N, 28, 28] and {train,test}_labels uint8 [N]."""
  with importlib.resources.files("adamix_jax.data").joinpath("fashion_mnist_subset.npz").open("rb") as f:
    with np.load(f) as arrays:
      return dict(arrays)


class FashionMnistSubset(tfds.core.GeneratorBasedBuilder):
  """Class-balanced Fashion-MNIST subset embedded in adamix_jax: 10,000 train / 2,000 test images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First 1,000 train and 200 test images of each class."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(names=CLASS_NAMES),
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://github.com/zalandoresearch/fashion-mnist",
      license="MIT",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the data ships with the package.
    arrays = load_arrays()
    return {
      split: self._generate_examples(arrays[f"{split}_images"], arrays[f"{split}_labels"])
      for split in ("train", "test")
    }

  def _generate_examples(self, images, labels):
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": image[..., None], "label": int(label)}
