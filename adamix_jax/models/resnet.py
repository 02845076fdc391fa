"""ResNet and ResNeXt backbones with the CIFAR stem (3x3, stride 1, no max-pool) or the ImageNet stem.

The layouts are those of mmcls/OpenMixup (`ResNet_CIFAR`, `ResNeXt`) and torchvision, so parameter
counts match the published ones exactly. A backbone returns the output of each of its four stages;
AdAutoMix's generator reads stage 3 (index 2), the heads read the last.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import BatchNorm, Init, conv


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with a residual connection (ResNet-18/34). Output channels: `planes`."""

  planes: int
  stride: int
  inits: Init
  axis_name: str | None
  dtype: Any

  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda scale_init=nn.initializers.ones: BatchNorm(
      axis_name=self.axis_name, scale_init=scale_init, dtype=self.dtype
    )
    y = conv(self.planes, 3, self.stride, init=self.inits, dtype=self.dtype)(x)
    y = nn.relu(bn()(y, train=train))
    y = conv(self.planes, 3, init=self.inits, dtype=self.dtype)(y)
    y = bn(self.inits.residual_bn_scale)(y, train=train)
    return nn.relu(y + _shortcut(self, x, self.planes, train))


class Bottleneck(nn.Module):
  """1x1 - 3x3 (strided, grouped for ResNeXt) - 1x1 bottleneck. Output channels: 4 * `planes`."""

  planes: int
  stride: int
  inits: Init
  axis_name: str | None
  dtype: Any
  groups: int = 1
  width_per_group: int = 64

  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda scale_init=nn.initializers.ones: BatchNorm(
      axis_name=self.axis_name, scale_init=scale_init, dtype=self.dtype
    )
    mid = int(self.planes * self.width_per_group / 64) * self.groups
    y = nn.relu(bn()(conv(mid, 1, init=self.inits, dtype=self.dtype)(x), train=train))
    y = conv(mid, 3, self.stride, groups=self.groups, init=self.inits, dtype=self.dtype)(y)
    y = nn.relu(bn()(y, train=train))
    y = conv(self.planes * 4, 1, init=self.inits, dtype=self.dtype)(y)
    y = bn(self.inits.residual_bn_scale)(y, train=train)
    return nn.relu(y + _shortcut(self, x, self.planes * 4, train))


def _shortcut(block: nn.Module, x: jax.Array, out_channels: int, train: bool) -> jax.Array:
  """Identity, or a strided 1x1 convolution + BN when the shape changes."""
  if block.stride == 1 and x.shape[-1] == out_channels:
    return x
  y = conv(out_channels, 1, block.stride, init=block.inits, dtype=block.dtype, name="shortcut_conv")(x)
  return BatchNorm(axis_name=block.axis_name, dtype=block.dtype, name="shortcut_bn")(y, train=train)


class ResNet(nn.Module):
  """ResNet/ResNeXt backbone.

  Attributes:
    block: BasicBlock or Bottleneck.
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
    stem: "cifar" (3x3 conv, stride 1, no max-pool) or "imagenet" (7x7 stride 2 + 3x3 max-pool).
    width: channels of the stem and of the first stage's `planes` (64 in the published networks).
    groups: ResNeXt cardinality (1 for plain ResNet).
    width_per_group: ResNeXt group width (64 for plain ResNet).
  """

  block: Any
  stage_sizes: tuple[int, ...]
  stem: str = "cifar"
  width: int = 64
  groups: int = 1
  width_per_group: int = 64
  inits: Init = Init()
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, stage_hook=None) -> tuple[jax.Array, ...]:
    """Maps images [B, H, W, C] to the stage outputs, [B, H/s, W/s, channels] for each stage.

    `stage_hook(k, x)`, if given, replaces the input x of stage k + 1 (k = 0 after the stem, k = 1, 2 after
    stages 1, 2): ManifoldMix mixes hidden features there.
    """
    x = images.astype(self.dtype)
    kernel, stride = (3, 1) if self.stem == "cifar" else (7, 2)
    x = conv(self.width, kernel, stride, init=self.inits, dtype=self.dtype, name="stem_conv")(x)
    x = nn.relu(BatchNorm(axis_name=self.axis_name, dtype=self.dtype, name="stem_bn")(x, train=train))
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block_args = dict(inits=self.inits, axis_name=self.axis_name, dtype=self.dtype)
    if self.block is Bottleneck:
      block_args.update(groups=self.groups, width_per_group=self.width_per_group)
    stages = []
    for stage, num_blocks in enumerate(self.stage_sizes):
      if stage_hook is not None and stage < 3:
        x = stage_hook(stage, x)
      for index in range(num_blocks):
        stride = 2 if stage > 0 and index == 0 else 1
        x = self.block(self.width * 2**stage, stride, name=f"stage{stage + 1}_block{index + 1}", **block_args)(
          x, train=train
        )
      stages.append(x)
    return tuple(stages)
