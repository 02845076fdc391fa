"""DeiT / ViT backbone: patch embedding, class token, learned position embedding, pre-norm blocks.

DeiT-S/16 (`deit_s`): 224² images, 16² patches (14×14 tokens), 12 blocks of width 384 with 6 heads, MLP
ratio 4, LayerNorm epsilon 1e-6; with a 1,000-class head it has timm's 22,050,664 parameters.

What the classifier and the generator read (`stages`): the patch tokens after each block as a map
[B, h, w, dim] (the class token left out), then the final-normed class token as [B, 1, 1, dim], which the
head reads (its global average over one position is the token itself). The official AdAutoMix DeiT-S
config taps the tokens after block 6: `config.generator.feature_stage = 5`. With the "intermediates"
collection mutable, the last block's attention from the class token to the patches, averaged over the
heads, is sown as `cls_attention` [B, h, w] (TransMix).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import Init
from adamix_jax.models.transformer_layers import (
  LINEAR_INIT,
  DropPath,
  Mlp,
  SelfAttention,
  check_heads,
  drop_path_rates,
  layer_norm,
  patch_embed,
)


class EncoderBlock(nn.Module):
  """x + DropPath(Attention(LN(x))), then x + DropPath(MLP(LN(x)))."""

  num_heads: int
  drop_path: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, return_attention: bool = False):
    """x [B, N, dim] -> [B, N, dim] (and the attention [B, heads, N, N] if asked)."""
    attended = SelfAttention(self.num_heads, self.dtype, name="attn")(
      layer_norm(1e-6, dtype=self.dtype, name="norm1")(x), return_attention=return_attention
    )
    attended, attention = attended if return_attention else (attended, None)
    x = x + DropPath(self.drop_path)(attended, train=train)
    y = Mlp(4 * x.shape[-1], self.dtype, name="mlp")(layer_norm(1e-6, dtype=self.dtype, name="norm2")(x))
    x = x + DropPath(self.drop_path)(y, train=train)
    return (x, attention) if return_attention else x


class VisionTransformer(nn.Module):
  """ViT with a class token (DeiT without the distillation token).

  Attributes:
    patch: patch size; the image side must be a multiple of it.
    width: embedding dimension.
    depth: number of blocks.
    num_heads: attention heads per block.
    drop_path: stochastic-depth rate of the last block (linear from 0).
  """

  patch: int = 16
  width: int = 384
  depth: int = 12
  num_heads: int = 6
  drop_path: float = 0.0
  inits: Init = Init()
  axis_name: str | None = None  # No BatchNorm: accepted for a common backbone signature, unused.
  dtype: Any = jnp.float32

  def check_image_size(self, height: int, width: int) -> None:
    """Raises a one-line error unless the patches tile the image (and the width splits into the heads)."""
    if height % self.patch or width % self.patch:
      raise ValueError(
        f"VisionTransformer: image size {height}x{width} is not a multiple of the patch size {self.patch}; set "
        f"config.data.image_size to a multiple of {self.patch} (with config.data.augment = 'random_resized_crop')."
      )
    check_heads("VisionTransformer", (self.width,), (self.num_heads,))

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool, stage_hook=None) -> tuple[jax.Array, ...]:
    """Maps images [B, H, W, C] to the token map after each block [B, H/p, W/p, width] and the normed class
    token [B, 1, 1, width] (last)."""
    if stage_hook is not None:
      raise ValueError("VisionTransformer has no stage inputs to mix: ManifoldMix runs on the CNNs and ConvNeXt.")
    self.check_image_size(images.shape[1], images.shape[2])
    x = patch_embed(self.width, self.patch, dtype=self.dtype)(images.astype(self.dtype))
    batch, rows, cols, _ = x.shape
    x = x.reshape(batch, rows * cols, self.width)
    cls = self.param("cls_token", LINEAR_INIT, (1, 1, self.width), jnp.float32)
    pos = self.param("pos_embed", LINEAR_INIT, (1, rows * cols + 1, self.width), jnp.float32)
    x = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, self.width)).astype(self.dtype), x], axis=1)
    x = x + pos.astype(self.dtype)
    stages = []
    rates = drop_path_rates(self.drop_path, (self.depth,))[0]
    for index in range(self.depth):
      block = EncoderBlock(self.num_heads, rates[index], self.dtype, name=f"block{index + 1}")
      if index < self.depth - 1:
        x = block(x, train=train)
      else:  # TransMix reads the last block's attention from the class token to the patches.
        x, attention = block(x, train=train, return_attention=True)
        cls_attention = jnp.mean(attention[:, :, 0, 1:].astype(jnp.float32), axis=1)
        self.sow("intermediates", "cls_attention", cls_attention.reshape(batch, rows, cols))
      stages.append(x[:, 1:].reshape(batch, rows, cols, self.width))
    cls_out = layer_norm(1e-6, dtype=self.dtype, name="norm")(x[:, 0])
    return (*stages, cls_out.reshape(batch, 1, 1, self.width))
