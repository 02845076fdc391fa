"""ConvNeXt backbone: a patchify stem, stages of 7×7 depthwise + inverted-MLP blocks with layer scale,
LayerNorm + 2×2 stride-2 convolutions between stages.

ConvNeXt-T (`convnext_t`): 224² images, 4×4 stride-4 stem, depths 3-3-9-3, widths 96-192-384-768,
LayerNorm epsilon 1e-6, layer scale initialised at 1e-6; with a 1,000-class head it has timm's 28,589,128
parameters. `convnext_t_cifar` is OpenMixup's 32×32 variant: a 3×3 stride-1 stem (32² -> 32, 16, 8, 4).

What the classifier and the generator read (`stages`): stages 1-4 [B, H/s, W/s, C] as they come out of
their blocks, then the head's input: stage 4 globally averaged and then layer-normed, [B, 1, 1, 768]
(pooling before the final norm, as the official classifier); with `norm_before_pool`, stage 4 layer-normed at
every position, [B, H/s, W/s, 768], which the head then pools (OpenMixup's `gap_before_final_norm=False`,
which AlignMix's ConvNeXt config sets: it mixes that map). The generator reads stage 3 (index 2,
384 channels).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import Init
from adamix_jax.models.transformer_layers import CONV_INIT, DropPath, dense, drop_path_rates, gelu, layer_norm

STEMS = ("imagenet", "cifar")


class ConvNeXtBlock(nn.Module):
  """x + DropPath(γ · Linear(GELU(Linear(LN(DWConv7(x)))))): depthwise 7×7, LayerNorm, 4× inverted MLP."""

  drop_path: float = 0.0
  layer_scale: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C]."""
    channels = x.shape[-1]
    y = nn.Conv(
      channels, (7, 7), padding=((3, 3), (3, 3)), feature_group_count=channels, kernel_init=CONV_INIT,
      dtype=self.dtype, name="depthwise_conv",
    )(x)  # fmt: skip
    y = layer_norm(1e-6, dtype=self.dtype, name="norm")(y)
    y = dense(channels, dtype=self.dtype, name="pointwise_conv2")(
      gelu(dense(4 * channels, dtype=self.dtype, name="pointwise_conv1")(y))
    )
    gamma = self.param("gamma", nn.initializers.constant(self.layer_scale), (channels,), jnp.float32)
    return x + DropPath(self.drop_path)(y * gamma.astype(self.dtype), train=train)


class ConvNeXt(nn.Module):
  """ConvNeXt (v1).

  Attributes:
    stem: "imagenet" (4×4 stride-4 patchify) or "cifar" (3×3 stride 1).
    width: channels of stage 1 (doubled at each downsampling).
    depths: blocks per stage.
    drop_path: stochastic-depth rate of the last block (linear from 0).
    norm_before_pool: hand the heads stage 4 normed at every position instead of pooled and then normed.
  """

  stem: str = "imagenet"
  width: int = 96
  depths: tuple[int, ...] = (3, 3, 9, 3)
  drop_path: float = 0.0
  norm_before_pool: bool = False
  layer_scale: float = 1e-6
  inits: Init = Init()
  axis_name: str | None = None  # No BatchNorm: accepted for a common backbone signature, unused.
  dtype: Any = jnp.float32

  def check_image_size(self, height: int, width: int) -> None:
    """Raises a one-line error unless the stem and the downsamplings divide the image evenly."""
    if self.stem not in STEMS:
      raise ValueError(f"ConvNeXt stem {self.stem!r}. Valid choices: {', '.join(STEMS)}.")
    reduction = (4 if self.stem == "imagenet" else 1) * 2 ** (len(self.depths) - 1)
    if height % reduction or width % reduction:
      raise ValueError(
        f"ConvNeXt ({self.stem} stem): image size {height}x{width} is not a multiple of {reduction}, which the "
        f"stem and the {len(self.depths) - 1} downsamplings divide it by; set config.data.image_size to a "
        f"multiple of {reduction} (with config.data.augment = 'random_resized_crop')."
      )

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, stage_hook=None) -> tuple[jax.Array, ...]:
    """Maps images [B, H, W, C] to the stage outputs and the pooled, normed head input (module docstring).

    `stage_hook(k, x)`, if given, replaces the input x of stage k + 1 for k = 0, 1, 2 (ManifoldMix).
    """
    self.check_image_size(images.shape[1], images.shape[2])
    kernel, stride, pad = (4, 4, 0) if self.stem == "imagenet" else (3, 1, 1)
    x = nn.Conv(
      self.width, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)), kernel_init=CONV_INIT,
      dtype=self.dtype, name="stem_conv",
    )(images.astype(self.dtype))  # fmt: skip
    x = layer_norm(1e-6, dtype=self.dtype, name="stem_norm")(x)
    rates = drop_path_rates(self.drop_path, self.depths)
    stages = []
    for stage, depth in enumerate(self.depths):
      if stage > 0:
        x = layer_norm(1e-6, dtype=self.dtype, name=f"downsample{stage}_norm")(x)
        x = nn.Conv(
          self.width * 2**stage, (2, 2), strides=2, padding="VALID", kernel_init=CONV_INIT, dtype=self.dtype,
          name=f"downsample{stage}_conv",
        )(x)  # fmt: skip
      if stage_hook is not None and stage < 3:
        x = stage_hook(stage, x)
      for index in range(depth):
        x = ConvNeXtBlock(rates[stage][index], self.layer_scale, self.dtype, name=f"stage{stage + 1}_block{index + 1}")(
          x, train=train
        )
      stages.append(x)
    if not self.norm_before_pool:
      x = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
    return (*stages, layer_norm(1e-6, dtype=self.dtype, name="norm")(x))
