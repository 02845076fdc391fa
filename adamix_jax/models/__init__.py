"""Backbones selectable by name, the classifier that puts heads on them, and their initialisation.

classifier = make_classifier("cifar_resnet18", num_classes=100)
variables = classifier.init(key, images, train=False)
"""

import dataclasses
import functools
import os
from collections.abc import Callable

import jax.numpy as jnp

from adamix_jax.config import ConfigError
from adamix_jax.models.classifier import Classifier, ClassifierOutput, Head, count_params
from adamix_jax.models.convnext import ConvNeXt
from adamix_jax.models.layers import INITS, BatchNorm, Init
from adamix_jax.models.preact import PreActNet
from adamix_jax.models.resnet import BasicBlock, Bottleneck, ResNet
from adamix_jax.models.swin import SwinTransformer
from adamix_jax.models.vit import VisionTransformer
from adamix_jax.options import Options, below, non_negative, one_of, option


def _resnet(block, stage_sizes, stem, width=64, **kwargs):
  return functools.partial(ResNet, block, stage_sizes, stem, width, **kwargs)


# name -> (default width, factory(width) -> a module taking init, axis_name, dtype).
BACKBONES: dict[str, tuple[int, Callable]] = {
  "cifar_resnet18": (64, lambda w: _resnet(BasicBlock, (2, 2, 2, 2), "cifar", w)),
  "cifar_resnet34": (64, lambda w: _resnet(BasicBlock, (3, 4, 6, 3), "cifar", w)),
  "cifar_resnet50": (64, lambda w: _resnet(Bottleneck, (3, 4, 6, 3), "cifar", w)),
  "cifar_resnext50_32x4d": (
    64,
    lambda w: _resnet(Bottleneck, (3, 4, 6, 3), "cifar", w, groups=32, width_per_group=4),
  ),
  "preact_resnet18": (64, lambda w: functools.partial(PreActNet, (2, 2, 2, 2), (w, 2 * w, 4 * w, 8 * w), w)),
  "wrn28_8": (16, lambda w: functools.partial(PreActNet, (4, 4, 4), (8 * w, 16 * w, 32 * w), w)),
  "resnet18": (64, lambda w: _resnet(BasicBlock, (2, 2, 2, 2), "imagenet", w)),
  "resnet34": (64, lambda w: _resnet(BasicBlock, (3, 4, 6, 3), "imagenet", w)),
  "resnet50": (64, lambda w: _resnet(Bottleneck, (3, 4, 6, 3), "imagenet", w)),
  "resnext50_32x4d": (
    64,
    lambda w: _resnet(Bottleneck, (3, 4, 6, 3), "imagenet", w, groups=32, width_per_group=4),
  ),
  "deit_s": (384, lambda w: functools.partial(VisionTransformer, patch=16, width=w, depth=12, num_heads=6)),
  "swin_t": (96, lambda w: functools.partial(SwinTransformer, width=w)),
  "convnext_t": (96, lambda w: functools.partial(ConvNeXt, stem="imagenet", width=w)),
  "convnext_t_cifar": (96, lambda w: functools.partial(ConvNeXt, stem="cifar", width=w)),
}
# Architecture options beyond the width, and the backbones that have them.
OPTIONS = {
  "drop_path": ("deit_s", "swin_t", "convnext_t", "convnext_t_cifar"),
  "window": ("swin_t",),
  "norm_before_pool": ("convnext_t", "convnext_t_cifar"),
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def make_backbone(
  name: str,
  *,
  width: int = 0,
  init: str = "official",
  axis_name: str | None = None,
  dtype: str = "float32",
  drop_path: float = 0.0,
  window: int = 0,
  norm_before_pool: bool = False,
):
  """The backbone `name` at `width` base channels (0: the published width).

  Args:
    name: a key of BACKBONES.
    width: base channels (stem and first stage; a transformer's embedding width); the others scale with it.
    init: "official" or "flax" (see layers.Init; the transformers always use their official initialisation).
    axis_name: mesh axis for synchronised BatchNorm, or None for per-device statistics.
    dtype: compute dtype name; parameters are always float32.
    drop_path: stochastic-depth rate of the last block (the backbones of OPTIONS["drop_path"]).
    window: attention window side, 0 for the published one (Swin).
    norm_before_pool: ConvNeXt hands its heads the normed map, not the normed average (convnext.py).
  """
  if name not in BACKBONES:
    raise ValueError(f"Unknown backbone {name!r}. Valid choices: {', '.join(sorted(BACKBONES))}.")
  given = (("drop_path", drop_path), ("window", window), ("norm_before_pool", norm_before_pool))
  options = {key: value for key, value in given if value}
  for key, value in options.items():
    if name not in OPTIONS[key]:
      unset = "False" if isinstance(value, bool) else "0"
      raise ValueError(
        f"config.model.{key} = {value} applies to {', '.join(OPTIONS[key])}, not {name}: leave it {unset}."
      )
  default_width, factory = BACKBONES[name]
  return factory(width or default_width)(inits=Init(init), axis_name=axis_name, dtype=DTYPES[dtype], **options)


def check_input(name: str, size: int, **backbone_kwargs) -> None:
  """Raises ValueError (one line, with the valid choices) when backbone `name` cannot take size × size
  images; nothing is traced or compiled. The CNNs take any size."""
  backbone = make_backbone(name, **backbone_kwargs)
  if hasattr(backbone, "check_image_size"):
    backbone.check_image_size(size, size)


def make_classifier(
  name: str, num_classes: int, head_names: tuple[str, ...] = ("one",), **backbone_kwargs
) -> Classifier:
  """A Classifier of backbone `name` with one linear head per entry of `head_names`."""
  backbone = make_backbone(name, **backbone_kwargs)
  return Classifier(backbone, num_classes, head_names, backbone.inits)


def _file_or_empty(path: str) -> str | None:
  if not path or os.path.isfile(path):
    return None
  return (
    "is not a file. Give the .npz of torchvision weights (adamix_jax/models/pretrained.py says how to convert a "
    ".pth), or '' to train from scratch"
  )


@dataclasses.dataclass(frozen=True)
class ModelOptions(Options):
  """`config.model`: the backbone and how it computes."""

  section = "model"
  name: str = option("name", one_of(BACKBONES))
  width: int = option("width", non_negative)  # Base channels; 0: the published width.
  init: str = option("init", one_of(INITS))
  pretrained: str = option("pretrained", _file_or_empty)  # .npz of torchvision weights for the backbone.
  sync_batch_norm: bool = option("sync_batch_norm")  # BatchNorm over the global batch.
  dtype: str = option("dtype", one_of(DTYPES))  # Compute dtype; parameters stay float32.
  window: int = option("window", non_negative)  # Swin's window side; 0: the published 7.
  drop_path: float = option("drop_path", non_negative, below(1))  # Stochastic depth of the last block.
  norm_before_pool: bool = option("norm_before_pool")  # ConvNeXt: the heads pool the normed map (AlignMix).

  def check(self):
    try:  # Builds the module (nothing traced): the backbone's own checks of its options.
      make_backbone(**self.architecture())
    except ValueError as error:
      raise ConfigError(str(error)) from None

  def check_input(self, size: int) -> None:
    """Raises ConfigError (one line) when the backbone cannot take size x size images; nothing is traced."""
    try:
      check_input(size=size, **self.architecture())
    except ValueError as error:
      raise ConfigError(str(error)) from None

  def classifier(self, num_classes: int, head_names: tuple[str, ...], axis_name: str) -> Classifier:
    """The Classifier these options describe; `axis_name`: the mesh axis BatchNorm syncs over when
    `sync_batch_norm` is set."""
    return make_classifier(
      num_classes=num_classes, head_names=head_names, init=self.init, dtype=self.dtype,
      axis_name=axis_name if self.sync_batch_norm else None, **self.architecture(),
    )  # fmt: skip

  def architecture(self) -> dict:
    """The backbone's name and shape options, as `make_backbone` takes them."""
    return dict(
      name=self.name, width=self.width, window=self.window, drop_path=self.drop_path,
      norm_before_pool=self.norm_before_pool,
    )  # fmt: skip


__all__ = [
  "BACKBONES",
  "INITS",
  "BatchNorm",
  "Classifier",
  "ClassifierOutput",
  "ConvNeXt",
  "Head",
  "Init",
  "ModelOptions",
  "OPTIONS",
  "check_input",
  "SwinTransformer",
  "VisionTransformer",
  "make_backbone",
  "make_classifier",
  "count_params",
]
