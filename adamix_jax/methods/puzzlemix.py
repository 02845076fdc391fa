"""PuzzleMix (Kim et al., ICML 2020, as OpenMixup's `puzzlemix` runs it; docs/method.md#puzzlemix).

Per step, on each device's shard:

  1. saliency: the gradient of the classifier's cross-entropy on the clean batch with respect to the input,
     in eval mode (running BatchNorm statistics, no parameter update), reduced to the root mean square over
     the channels, [B, H, W];
  2. a draw: the partner permutation, lam ~ Beta(alpha, alpha) and the mask's blocks per side
     (`puzzlemix.blocks`);
  3. the mask: the graph cut of saliency, local smoothness and a prior around lam (`puzzlemix.block_mask`);
  4. transport (`puzzlemix.transport`): each image's salient blocks move under its own mask, the partner's
     under the complement (`puzzlemix.transport_plan`, `puzzlemix.transport`);
  5. the mix: mask × own + (1 − mask) × partner, each example's lam the mean of its mask; the classifier's
     train-mode pass and the mixup cross-entropy (or DM) with those per-example weights.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import generators, mixing
from adamix_jax import puzzlemix as puzzle_ops
from adamix_jax.config import ConfigError
from adamix_jax.methods.base import Networks
from adamix_jax.methods.static_mixup import StaticMixup, StaticMixupOptions
from adamix_jax.options import option


@dataclasses.dataclass(frozen=True)
class PuzzleMixOptions(StaticMixupOptions):
  """A static mixup's options (`mixup.alpha` is lam's) and PuzzleMix's own (`config.puzzlemix`)."""

  puzzle: puzzle_ops.PuzzleOptions = option("puzzlemix")


def mix(
  images: jax.Array, labels: jax.Array, saliency: jax.Array, key: jax.Array, alpha: float, options, std
) -> mixing.MixResult:
  """PuzzleMix's mixed batch of normalised images [B, H, W, C] with labels [B] and saliency [B, H, W].

  `std` (one value per channel) takes the images back to pixel units for the smoothness term. The mask's
  blocks per side are drawn from `options.blocks`; each count has its own compiled branch.
  """
  batch, size = images.shape[0], images.shape[1]
  plan_key, blocks_key = jax.random.split(key)
  plan = mixing.sample_plan(plan_key, batch, alpha)
  pixels = images * jnp.asarray(std, images.dtype)  # The mean cancels in the differences the term takes.

  def branch(blocks):
    def mixed():
      mask = puzzle_ops.block_mask(saliency, pixels, plan.permutation, plan.lam, blocks, options)
      own, partner = images, images[plan.permutation]
      if options.transport:
        unary = puzzle_ops.unary(saliency, blocks)
        own = puzzle_ops.transport(own, puzzle_ops.transport_plan(mask, unary, options.transport_eps), blocks)
        partner_plan = puzzle_ops.transport_plan(1 - mask, unary[plan.permutation], options.transport_eps)
        partner = puzzle_ops.transport(partner, partner_plan, blocks)
      weight = generators.upsample(mask[..., None], size // blocks, "nearest")
      return weight * own + (1 - weight) * partner, weight

    return mixed

  choice = jax.random.randint(blocks_key, (), 0, len(options.blocks))
  mixed, weight = jax.lax.switch(choice, [branch(blocks) for blocks in options.blocks])
  lam = weight.mean(axis=(1, 2, 3))
  return mixing.MixResult(
    mixed, jnp.stack([labels, labels[plan.permutation]]), jnp.stack([lam, 1 - lam]), weight.astype(jnp.float32)
  )


class PuzzleMix(StaticMixup):
  """PuzzleMix (options: PuzzleMixOptions; OpenMixup's CIFAR settings are base_config()'s)."""

  name = "puzzlemix"
  Options = PuzzleMixOptions

  def make_networks(self, classifier, image_shape):
    """The classifier alone; first checks that the images suit the options (one line, before compiling)."""
    height, width, channels = image_shape
    if height != width:
      raise ConfigError(f"puzzlemix needs square images, not {height}x{width}.")
    self.options.puzzle.check_size(height)
    self.options.puzzle.std(height, channels)
    return Networks(classifier)

  def saliency(self, nets: Networks, variables: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
    """float32 [B, H, W]: the root mean square over the channels of d cross-entropy / d images, in eval mode."""

    def loss(x):
      return self.cross_entropy(nets.classifier.apply(variables, x, train=False).logits["one"], labels)

    gradient = jax.grad(loss)(images)
    return jax.lax.stop_gradient(jnp.sqrt(jnp.mean(gradient.astype(jnp.float32) ** 2, axis=-1)))

  def mix(self, images, labels, key, saliency=None) -> mixing.MixResult:
    """The mixed batch of images [B, H, W, C] and labels [B] with their saliency [B, H, W] (`saliency`)."""
    if saliency is None:
      raise ValueError("PuzzleMix mixes by saliency: pass saliency=method.saliency(nets, variables, images, labels).")
    std = self.options.puzzle.std(images.shape[1], images.shape[-1])
    return mix(images, labels, saliency, key, self.options.mixup.alpha, self.options.puzzle, std)

  def preview(self, nets, state, images, labels, rng):
    variables = {"params": state.params["classifier"], "batch_stats": state.batch_stats["classifier"]}
    saliency = self.saliency(nets, variables, images, labels)
    return self.mix(images, labels, jax.random.split(rng)[0], saliency)

  def forward(self, nets, variables, batch, mix_key, rng):
    images, labels = batch["images"], batch["labels"]
    saliency = self.saliency(nets, jax.lax.stop_gradient(variables), images, labels)
    return self.classify(nets, variables, self.mix(images, labels, mix_key, saliency), rng)
