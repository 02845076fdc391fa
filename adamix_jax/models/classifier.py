"""A classifier is a backbone plus named linear heads, each reading the last stage.

The heads are separate modules so methods can ask for what they need: ERM and the static mixups train
`head_one`; AutoMix and AdAutoMix add `head_mix`, which learns from mixed samples.
"""

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from adamix_jax.models.layers import Init


class ClassifierOutput(NamedTuple):
  """stages: each stage's output [B, h, w, c]; logits: head name -> float32 logits [B, num_classes]."""

  stages: tuple[jax.Array, ...]
  logits: dict[str, jax.Array]


class Head(nn.Module):
  """Global average pooling and a linear layer; logits in float32 whatever the compute dtype."""

  num_classes: int
  inits: Init = Init()

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    """Maps features [B, h, w, c] to logits [B, num_classes]."""
    pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=self.inits.head, dtype=jnp.float32)(pooled)


class Classifier(nn.Module):
  """Backbone and heads; `head_names` ("one", "mix") become the modules `head_one`, `head_mix`."""

  backbone: nn.Module
  num_classes: int
  head_names: tuple[str, ...] = ("one",)
  inits: Init = Init()

  @nn.compact
  def __call__(
    self, images: jax.Array, *, train: bool, stage_hook=None, head_hook=None, detach_heads=False
  ) -> ClassifierOutput:
    """Maps images [B, H, W, C] to the stage outputs and the logits of every head.

    `stage_hook(k, x)` is passed to the backbone (ManifoldMix); None runs it unchanged. `head_hook(x)`, if
    given, replaces the heads' input x [B, h, w, c], the last entry of the stages (AlignMix). `detach_heads` (a
    bool, or a traced bool scalar) stops the heads' gradient from reaching the backbone (DMixMatch's early
    labeled x unlabeled term trains its head alone).
    """
    stages = self.backbone(images, train=train, stage_hook=stage_hook)
    features = stages[-1] if head_hook is None else head_hook(stages[-1])
    if detach_heads is not False:
      features = jnp.where(detach_heads, jax.lax.stop_gradient(features), features)
    logits = {name: Head(self.num_classes, self.inits, name=f"head_{name}")(features) for name in self.head_names}
    return ClassifierOutput(stages, logits)


def count_params(params: Any) -> int:
  """Number of scalars in a parameter tree."""
  return sum(x.size for x in jax.tree.leaves(params))
