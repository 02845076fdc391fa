"""ImageNet-pretrained backbones from torchvision weights, for the fine-grained settings
(docs/method.md#recipes-and-expected-numbers).

Nothing is downloaded: convert a torchvision checkpoint once, where PyTorch is installed::

    python -c "import numpy as np, torch; sd = torch.load('resnet18-f37072fd.pth');
               np.savez('resnet18.npz', **{k: v.numpy() for k, v in sd.items()})"

and point `config.model.pretrained` at the .npz. The file's keys are torchvision's (`conv1.weight`,
`layer1.0.bn2.running_var`, `layer2.0.downsample.0.weight`, ...); the classifier `fc.*` is not loaded (the
heads are new). BatchNorm running statistics are loaded with the weights.
"""

import re
from typing import Any

import numpy as np
from flax import traverse_util

_BLOCK = re.compile(r"layer(\d+)\.(\d+)\.(conv|bn)(\d+)\.(\w+)$")
_DOWNSAMPLE = re.compile(r"layer(\d+)\.(\d+)\.downsample\.([01])\.(\w+)$")
_STEM = re.compile(r"(conv|bn)1\.(\w+)$")
_BN_FIELDS = {"weight": ("params", "scale"), "bias": ("params", "bias"), "running_mean": ("batch_stats", "mean")}
_BN_FIELDS["running_var"] = ("batch_stats", "var")
_SKIPPED = re.compile(r"(^fc\.|num_batches_tracked$)")


class PretrainedMismatchError(ValueError):
  """The weights file does not fit the configured backbone. The message names the keys and shapes."""


def torchvision_key_to_path(key: str) -> tuple[str, tuple[str, ...]] | None:
  """('params' | 'batch_stats', path inside the backbone) of a torchvision key; None for skipped keys."""
  if _SKIPPED.search(key):
    return None
  if match := _STEM.match(key):
    kind, field = match.groups()
    module = "stem_conv" if kind == "conv" else "stem_bn"
    return _leaf(module, kind, field, key)
  if match := _BLOCK.match(key):
    stage, index, kind, number, field = match.groups()
    module = f"{'Conv' if kind == 'conv' else 'BatchNorm'}_{int(number) - 1}"
    collection, leaf = _leaf(module, kind, field, key)
    return collection, (f"stage{stage}_block{int(index) + 1}", *leaf)
  if match := _DOWNSAMPLE.match(key):
    stage, index, position, field = match.groups()
    kind = "conv" if position == "0" else "bn"
    collection, leaf = _leaf("shortcut_conv" if kind == "conv" else "shortcut_bn", kind, field, key)
    return collection, (f"stage{stage}_block{int(index) + 1}", *leaf)
  raise PretrainedMismatchError(f"{key!r} is not a key of a torchvision ResNet/ResNeXt.")


def _leaf(module: str, kind: str, field: str, key: str) -> tuple[str, tuple[str, ...]]:
  if kind == "conv" and field == "weight":
    return "params", (module, "kernel")
  if kind == "bn" and field in _BN_FIELDS:
    collection, name = _BN_FIELDS[field]
    return collection, (module, name)
  raise PretrainedMismatchError(f"{key!r} is not a key of a torchvision ResNet/ResNeXt.")


def load_torchvision(path: str, params: Any, batch_stats: Any) -> tuple[Any, Any]:
  """The backbone's (params, batch_stats) with every leaf replaced from the torchvision weights at `path`.

  Args:
    path: an .npz of a torchvision ResNet/ResNeXt state dict.
    params, batch_stats: the backbone's initial trees (they give the structure and the shapes).

  Raises:
    PretrainedMismatchError: a key has no place in the backbone, a shape differs, or a leaf gets no value.
  """
  trees = {"params": traverse_util.flatten_dict(params), "batch_stats": traverse_util.flatten_dict(batch_stats)}
  loaded = {"params": {}, "batch_stats": {}}
  with np.load(path) as weights:
    for key in weights.files:
      target = torchvision_key_to_path(key)
      if target is None:
        continue
      collection, leaf = target
      value = weights[key]
      if value.ndim == 4:  # PyTorch OIHW (I per group) -> Flax HWIO.
        value = value.transpose(2, 3, 1, 0)
      expected = trees[collection].get(leaf)
      if expected is None or expected.shape != value.shape:
        found = "nothing" if expected is None else f"shape {expected.shape}"
        raise PretrainedMismatchError(
          f"{path}: {key} {tuple(weights[key].shape)} -> {'/'.join(leaf)} where the backbone has {found}. "
          "Check config.model.name and config.model.width against the network the weights come from."
        )
      loaded[collection][leaf] = np.asarray(value, np.float32)
  for collection, tree in trees.items():
    missing = sorted("/".join(leaf) for leaf in tree if leaf not in loaded[collection])
    if missing:
      raise PretrainedMismatchError(
        f"{path} has no value for {len(missing)} backbone leaves: {', '.join(missing[:5])}."
      )
  return (traverse_util.unflatten_dict(loaded["params"]), traverse_util.unflatten_dict(loaded["batch_stats"]))


def replace_backbone(params: dict, batch_stats: dict, backbone_params: Any, backbone_stats: Any) -> tuple[dict, dict]:
  """A method's initial (params, batch_stats) with the classifier's backbone replaced.

  Every BatchNorm statistics group that has a backbone (the classifier's, the EMA teacher's) gets
  `backbone_stats`, so the teacher starts from the pretrained network too.
  """
  params = {**params, "classifier": {**params["classifier"], "backbone": backbone_params}}
  batch_stats = {
    group: {**tree, "backbone": backbone_stats} if "backbone" in tree else tree for group, tree in batch_stats.items()
  }
  return params, batch_stats
