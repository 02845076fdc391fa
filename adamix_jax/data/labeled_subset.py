"""The labeled subset of a semi-supervised run: chosen class-balanced from a seed, or read from a user's file.

The chosen indices (positions in the training split) are written to WORKDIR/labeled_indices.json when the
run starts, and a resumed run, another host or a later evaluation reads them back from there, so every
part of a run uses exactly the same labels:

    indices = labeled_subset.resolve(config, labels, num_classes, workdir)   # int64 [L], sorted
"""

import json
import os

import ml_collections
import numpy as np
from etils import epath

FILENAME = "labeled_indices.json"


class LabeledSubsetError(ValueError):
  """The labeled subset cannot be built: too many labels asked for, or a bad index file. Says what to do."""


def choose_balanced(labels: np.ndarray, num_labeled: int, num_classes: int, seed: int) -> np.ndarray:
  """num_labeled / num_classes examples of every class, drawn without replacement from `seed`.

  Args:
    labels: int [N], the class of every training example.
    num_labeled: a multiple of num_classes, at most the examples of the smallest class times num_classes.
    num_classes: classes of the dataset.
    seed: the run's seed; the same seed gives the same subset.

  Returns:
    int64 [num_labeled], sorted positions in the training split.

  Raises:
    LabeledSubsetError: num_labeled is not a multiple of num_classes, or a class has too few examples.
  """
  if num_labeled > len(labels):
    raise LabeledSubsetError(
      f"config.semisup.num_labeled = {num_labeled} exceeds the {len(labels)} examples of the training split."
    )
  if num_labeled % num_classes:
    raise LabeledSubsetError(
      f"config.semisup.num_labeled = {num_labeled} cannot be shared evenly by the {num_classes} classes: use a "
      f"multiple of {num_classes}, or give your own list in config.semisup.labeled_indices."
    )
  per_class = num_labeled // num_classes
  rng = np.random.default_rng(np.random.SeedSequence((seed, 0x1ABE1ED)))
  chosen = []
  for label in range(num_classes):
    members = np.flatnonzero(labels == label)
    if len(members) < per_class:
      raise LabeledSubsetError(
        f"Class {label} has {len(members)} training examples, fewer than the {per_class} per class that "
        f"config.semisup.num_labeled = {num_labeled} needs. Ask for at most {len(members) * num_classes}."
      )
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen)).astype(np.int64)


def read_index_file(path: str, num_train: int) -> np.ndarray:
  """The indices of a user's file: a .json list, a .npy array, or text with one index per line.

  Returns:
    int64 [L], sorted.

  Raises:
    LabeledSubsetError: the file cannot be parsed, is empty, or holds duplicated or out-of-range indices.
  """
  try:
    if path.endswith(".npy"):
      with epath.Path(path).open("rb") as f:
        values = np.load(f)
    else:
      text = epath.Path(path).read_text()
      values = json.loads(text) if path.endswith(".json") else text.split()
      if isinstance(values, dict):
        values = values["indices"]
    indices = np.asarray(values)
    if indices.dtype.kind not in "iu":
      indices = np.asarray([int(v) for v in indices.ravel()])
  except (ValueError, KeyError, TypeError) as error:
    raise LabeledSubsetError(
      f"config.semisup.labeled_indices = {path!r} cannot be read as a list of integers ({error}). Give a .json "
      "list, a .npy array, or a text file with one index per line."
    ) from None
  indices = indices.astype(np.int64).ravel()
  if indices.size == 0:
    raise LabeledSubsetError(f"config.semisup.labeled_indices = {path!r} holds no index.")
  bad = indices[(indices < 0) | (indices >= num_train)]
  if bad.size:
    raise LabeledSubsetError(
      f"config.semisup.labeled_indices = {path!r} holds indices outside the training split's [0, {num_train}): "
      f"{', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''}."
    )
  values, counts = np.unique(indices, return_counts=True)
  if (counts > 1).any():
    repeated = values[counts > 1]
    raise LabeledSubsetError(
      f"config.semisup.labeled_indices = {path!r} repeats indices ({', '.join(map(str, repeated[:5]))}"
      f"{' ...' if len(repeated) > 5 else ''}): each labeled example may appear once."
    )
  return values


def resolve(
  config: ml_collections.ConfigDict, labels: np.ndarray, num_classes: int, workdir: str | None, slices: int = 1
) -> np.ndarray:
  """The run's labeled indices: the workdir's saved ones if present, else the user's file or a balanced draw.

  A saved set that the config now asks to change (another count, or another file's content) is an error:
  a run keeps its labels.

  Args:
    config: the run's config (config.semisup.num_labeled or labeled_indices, config.seed).
    labels: int [N], the classes of the (possibly truncated) training split.
    num_classes: classes of the dataset.
    workdir: where labeled_indices.json is kept, or None (notebooks: nothing saved).
    slices: input slices the labeled set is cut into (each needs one example at least).

  Returns:
    int64 [L], sorted positions in the training split.
  """
  options = config.semisup
  if options.labeled_indices:
    wanted, source = read_index_file(options.labeled_indices, len(labels)), options.labeled_indices
  else:
    wanted, source = choose_balanced(labels, options.num_labeled, num_classes, config.seed), "balanced"
  if len(wanted) < slices:
    raise LabeledSubsetError(
      f"The {len(wanted)} labeled examples cannot be shared by the {slices} input slices (config.data.input_slices, "
      "or one per process): label at least one example per slice."
    )
  path = os.path.join(workdir, FILENAME) if workdir else None
  if path and epath.Path(path).exists():
    saved = np.asarray(json.loads(epath.Path(path).read_text())["indices"], np.int64)
    if not np.array_equal(saved, wanted):
      raise LabeledSubsetError(
        f"{path} holds the {len(saved)} labels this run started with; the config now gives another set "
        f"({len(wanted)} labels from {source}). Use another --workdir, or the run's own settings."
      )
  return wanted


def save(workdir: str, indices: np.ndarray, labels: np.ndarray, source: str) -> None:
  """Writes WORKDIR/labeled_indices.json (indices, their classes, where they came from), once."""
  path = epath.Path(workdir) / FILENAME
  if path.exists():
    return
  record = {
    "source": source,
    "num_labeled": int(len(indices)),
    "per_class": np.bincount(labels[indices]).tolist(),
    "indices": indices.tolist(),
  }
  partial = path.with_name(FILENAME + ".tmp")
  partial.write_text(json.dumps(record))
  partial.replace(path)
