"""Pre-activation backbones: PreAct-ResNet-18 and Wide-ResNet-28-8 (CIFAR).

Both apply BN-ReLU before each convolution (He et al., "Identity Mappings in Deep Residual Networks";
Zagoruyko & Komodakis, "Wide Residual Networks") and a final BN-ReLU on the last stage, whose output the
head pools. When a block changes shape, its 1x1 shortcut reads the pre-activated input.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import BatchNorm, Init, conv


class PreActBlock(nn.Module):
  """BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 plus the shortcut. Output channels: `planes`."""

  planes: int
  stride: int
  inits: Init
  axis_name: str | None
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bn = lambda: BatchNorm(axis_name=self.axis_name, dtype=self.dtype)
    activated = nn.relu(bn()(x, train=train))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.planes:
      shortcut = conv(self.planes, 1, self.stride, init=self.inits, dtype=self.dtype, name="shortcut_conv")(activated)
    y = conv(self.planes, 3, self.stride, init=self.inits, dtype=self.dtype)(activated)
    y = nn.relu(bn()(y, train=train))
    y = conv(self.planes, 3, init=self.inits, dtype=self.dtype)(y)
    return y + shortcut


class PreActNet(nn.Module):
  """A pre-activation network: 3x3 stem, stages of PreActBlocks, final BN-ReLU.

  Attributes:
    stage_sizes: blocks per stage.
    stage_widths: output channels of each stage.
    stem_width: channels of the stem convolution.
  """

  stage_sizes: tuple[int, ...]
  stage_widths: tuple[int, ...]
  stem_width: int
  inits: Init = Init()
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, stage_hook=None) -> tuple[jax.Array, ...]:
    """Maps images [B, H, W, C] to the stage outputs, [B, H/s, W/s, channels] for each stage.

    `stage_hook(k, x)`, if given, replaces the input x of stage k + 1 (see ResNet).
    """
    x = conv(self.stem_width, 3, init=self.inits, dtype=self.dtype, name="stem_conv")(images.astype(self.dtype))
    stages = []
    for stage, (num_blocks, width) in enumerate(zip(self.stage_sizes, self.stage_widths, strict=True)):
      if stage_hook is not None and stage < 3:
        x = stage_hook(stage, x)
      for index in range(num_blocks):
        stride = 2 if stage > 0 and index == 0 else 1
        block = PreActBlock(
          width, stride, self.inits, self.axis_name, self.dtype, name=f"stage{stage + 1}_block{index + 1}"
        )
        x = block(x, train=train)
      stages.append(x)
    final_bn = BatchNorm(axis_name=self.axis_name, dtype=self.dtype, name="final_bn")
    stages[-1] = nn.relu(final_bn(stages[-1], train=train))
    return tuple(stages)
