"""Lays the official Tiny-ImageNet archive out as the image folder `tiny_imagenet` is read from.

    unzip tiny-imagenet-200.zip -d /data            # from http://cs231n.stanford.edu/tiny-imagenet-200.zip
    python -m adamix_jax.data.prepare_tiny_imagenet /data/tiny-imagenet-200 ~/tensorflow_datasets/tiny_imagenet

The archive has train/<wnid>/images/*.JPEG and val/images/*.JPEG with val/val_annotations.txt naming
each validation image's class. The result is DST/train/<wnid>/*.JPEG and DST/val/<wnid>/*.JPEG (100,000 and
10,000 images, 200 classes), as hard links where the file system allows (no extra space), else copies.
"""

import os
import shutil
import sys


def _link(source: str, target: str) -> None:
  try:
    os.link(source, target)
  except OSError:
    shutil.copyfile(source, target)


def prepare(source: str, target: str) -> dict[str, int]:
  """Rearranges the extracted archive at `source` into `target`. Returns the images written per split."""
  train_dir, val_dir = os.path.join(source, "train"), os.path.join(source, "val")
  annotations = os.path.join(val_dir, "val_annotations.txt")
  if not (os.path.isdir(train_dir) and os.path.isfile(annotations)):
    raise FileNotFoundError(
      f"{source} is not an extracted tiny-imagenet-200 archive: expected train/ and val/val_annotations.txt."
    )
  counts = {"train": 0, "val": 0}
  for wnid in sorted(os.listdir(train_dir)):
    images = os.path.join(train_dir, wnid, "images")
    if not os.path.isdir(images):
      continue
    os.makedirs(os.path.join(target, "train", wnid), exist_ok=True)
    for name in sorted(os.listdir(images)):
      _link(os.path.join(images, name), os.path.join(target, "train", wnid, name))
      counts["train"] += 1
  with open(annotations) as lines:
    for line in lines:
      name, wnid = line.split("\t")[:2]
      os.makedirs(os.path.join(target, "val", wnid), exist_ok=True)
      _link(os.path.join(val_dir, "images", name), os.path.join(target, "val", wnid, name))
      counts["val"] += 1
  return counts


def main(argv: list[str]) -> None:
  if len(argv) != 3:
    sys.exit(__doc__)
  counts = prepare(argv[1], argv[2])
  print(f"Wrote {counts['train']} training and {counts['val']} validation images to {argv[2]}.")


if __name__ == "__main__":
  main(sys.argv)
