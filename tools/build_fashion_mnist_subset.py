"""Rebuilds the embedded Fashion-MNIST subset shipped in `adamix_jax/data/fashion_mnist_subset.npz`.

The subset is class balanced: the first 1,000 training and the first 200 test images of every class, in
the original order. Source: the Debian package `dataset-fashion-mnist` (MIT licence), which installs the
four IDX files of Fashion-MNIST under /usr/share/datasets/fashion-mnist/:

    apt-get install -y dataset-fashion-mnist
    python tools/build_fashion_mnist_subset.py
"""

import argparse
import gzip
import pathlib

import numpy as np

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
OUTPUT = pathlib.Path(__file__).parent.parent / "adamix_jax" / "data" / "fashion_mnist_subset.npz"


def read_idx(path: pathlib.Path, header_bytes: int) -> np.ndarray:
  with gzip.open(path) as f:
    return np.frombuffer(f.read(), np.uint8, offset=header_bytes)


def balanced_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
  """The first `per_class` indices of every class, in dataset order."""
  chosen = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
  return np.sort(np.concatenate(chosen))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist", type=pathlib.Path)
  parser.add_argument("--output", default=OUTPUT, type=pathlib.Path)
  args = parser.parse_args()
  arrays = {}
  for split, prefix, per_class in (("train", "train", TRAIN_PER_CLASS), ("test", "t10k", TEST_PER_CLASS)):
    images = read_idx(args.source / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx(args.source / f"{prefix}-labels-idx1-ubyte.gz", 8)
    keep = balanced_indices(labels, per_class)
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[keep], labels[keep]
  np.savez_compressed(args.output, **arrays)
  print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
  main()
