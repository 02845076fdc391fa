"""`fashion_mnist_subset`: the embedded real-image dataset.

A class-balanced subset of Fashion-MNIST (MIT licence, Zalando Research): the first 1,000 training and the
first 200 test images of every class, 28x28 grey, 10 classes. It ships inside the package
(`fashion_mnist_subset.npz`, rebuilt by `tools/build_fashion_mnist_subset.py`), so it needs no preparation
and no network, and it goes through exactly the same input pipeline as CIFAR-100.
"""

import importlib.resources

import numpy as np

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
