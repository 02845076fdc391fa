"""SMMix (Chen et al., ICCV 2023, as OpenMixup's `MixUpClassification` runs it on DeiT; docs/method.md#smmix).

Each step draws, with probability `smmix.prob` (0.8), SMMix, and otherwise MixUp with lam ~ Beta(mixup.alpha,
mixup.alpha) (OpenMixup's `mix_mode=["smmix", "mixup"], mix_prob=[0.8, 0.2]`). SMMix reads the class token's
attention from a separate pass of the classifier on the clean batch (train mode, its own drop-path draws,
no gradient), pastes each image's partner's most attended square over its least attended one
(`smmix.mix`) and trains `head_one` on the result with the mixup cross-entropy (or DM). It needs a class
token: DeiT-S.
"""

import dataclasses

import jax

from adamix_jax import mixing
from adamix_jax import smmix as smmix_ops
from adamix_jax.methods.base import drop_path_rngs
from adamix_jax.methods.static_mixup import StaticMixup, StaticMixupOptions
from adamix_jax.options import option


@dataclasses.dataclass(frozen=True)
class SMMixOptions(StaticMixupOptions):
  """A static mixup's options (`mixup.alpha` is the MixUp branch's) and SMMix's own (`config.smmix`)."""

  smmix: smmix_ops.SMMixOptions = option("smmix")


class SMMix(StaticMixup):
  """SMMix on DeiT-S (options: SMMixOptions; OpenMixup's DeiT-S settings are base_config()'s)."""

  name = "smmix"
  backbones = ("deit_s",)
  Options = SMMixOptions

  def attention(self, nets, variables, images: jax.Array, rng: jax.Array) -> jax.Array:
    """The class token's attention [B, s, s] of the last block, from a train-mode pass without gradient."""
    _, updates = nets.classifier.apply(
      variables, images, train=True, mutable=["intermediates", "batch_stats"], rngs=drop_path_rngs(rng, index=1)
    )
    return jax.lax.stop_gradient(updates["intermediates"]["backbone"]["cls_attention"][0])

  def mix_with(self, nets, variables, images, labels, key, rng) -> mixing.MixResult:
    """SMMix (probability `smmix.prob`) or MixUp of images [B, H, W, C] and labels [B], drawn from `key`."""
    choice_key, side_key, plan_key = jax.random.split(key, 3)
    options = self.options.smmix

    def smmix():
      attention = self.attention(nets, variables, images, rng)
      sides = smmix_ops.square_sides(attention.shape[1], tuple(options.side_ratios))
      return smmix_ops.mix(images, labels, attention, side_key, sides)

    def mixup():
      return mixing.mixup(images, labels, mixing.sample_plan(plan_key, labels.shape[0], self.options.mixup.alpha))

    return jax.lax.cond(jax.random.bernoulli(choice_key, options.prob), smmix, mixup)

  def preview(self, nets, state, images, labels, rng):
    variables = state.variables()
    key = jax.random.split(rng)[0]
    return self.mix_with(nets, variables, images, labels, key, key)

  def forward(self, nets, variables, batch, mix_key, rng):
    mixed = self.mix_with(nets, variables, batch["images"], batch["labels"], mix_key, rng)
    return self.classify(nets, variables, mixed, rng)
