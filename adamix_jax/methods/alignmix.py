"""AlignMix (Venkataramanan et al., CVPR 2022, as OpenMixup's `MixUpClassification` runs it;
docs/method.md#alignmix).

Each step draws lam ~ Beta(mixup.alpha, mixup.alpha), a partner permutation and, with equal chances, one of
two mixings (OpenMixup's `mix_mode=[<alternate>, "alignmix"]`):

  - AlignMix: the classifier's train-mode pass on the clean batch up to the heads' input (the last feature
    map, [B, h, w, c]); each map is mixed with its partner's after an optimal-transport alignment
    (`alignmix.align_mix`, the direction drawn per step), and the heads pool and classify the mixture;
  - the alternate (`alignmix.alternate`): ManifoldMix (`mixup.manifoldmix_stages`; OpenMixup's CIFAR ResNet
    config) or MixUp of the images (its transformer configs); "none" runs AlignMix every step.

Both train `head_one` with the mixup cross-entropy (or DM) with weights (lam, 1 - lam). The heads need a
feature map: DeiT-S (a class token) cannot run it, and ConvNeXt needs `model.norm_before_pool` (its config
in OpenMixup sets `gap_before_final_norm=False`).
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import alignmix as align_ops
from adamix_jax import mixing
from adamix_jax.config import ConfigError
from adamix_jax.methods.base import Networks, drop_path_rngs
from adamix_jax.methods.static_mixup import StaticMixup, StaticMixupOptions, manifold_hook, plan_labels
from adamix_jax.models import ConvNeXt, SwinTransformer, VisionTransformer
from adamix_jax.options import option


@dataclasses.dataclass(frozen=True)
class AlignMixOptions(StaticMixupOptions):
  """A static mixup's options (`mixup.alpha` is lam's for both mixings) and AlignMix's (`config.alignmix`)."""

  align: align_ops.AlignMixOptions = option("alignmix")


class AlignMix(StaticMixup):
  """AlignMix (options: AlignMixOptions; OpenMixup's settings are base_config()'s)."""

  name = "alignmix"
  mixes_images = False
  Options = AlignMixOptions

  def make_networks(self, classifier, image_shape):
    """The classifier alone; first checks that its heads read a feature map (one line, before compiling)."""
    backbone = classifier.backbone
    if isinstance(backbone, VisionTransformer):
      raise ConfigError(
        "config.method = 'alignmix' aligns the feature maps the heads read; DeiT-S's heads read its class token. "
        "Choose a CNN, swin_t or convnext_t."
      )
    if isinstance(backbone, ConvNeXt) and not backbone.norm_before_pool:
      raise ConfigError(
        "config.method = 'alignmix' on ConvNeXt needs the heads to read its last feature map: set "
        "config.model.norm_before_pool = True (OpenMixup's AlignMix config does)."
      )
    if self.options.align.alternate == "manifoldmix" and isinstance(backbone, SwinTransformer):
      raise ConfigError(
        "config.alignmix.alternate = 'manifoldmix' mixes stage inputs, which SwinTransformer does not expose: "
        "set it to 'mixup' (OpenMixup's Swin-T config) or 'none'."
      )
    return Networks(classifier)

  def preview(self, nets, state, images, labels, rng):
    return None  # It mixes feature maps: nothing to look at.

  def draw(self, key: jax.Array, batch_size: int) -> tuple[mixing.MixPlan, jax.Array, jax.Array]:
    """A step's draws from `key`: (the partners and lam, whether AlignMix runs rather than the alternate
    (bool []), the direction of the alignment (0 or 1, int []))."""
    plan_key, choice_key, direction_key = jax.random.split(key, 3)
    plan = mixing.sample_plan(plan_key, batch_size, self.options.mixup.alpha)
    aligned = jnp.bool_(True) if self.options.align.alternate == "none" else jax.random.bernoulli(choice_key)
    return plan, aligned, jax.random.randint(direction_key, (), 0, 2)

  def forward(self, nets, variables, batch, mix_key, rng):
    images, labels = batch["images"], batch["labels"]
    plan, aligned, direction = self.draw(mix_key, labels.shape[0])
    options = self.options.align

    def head_hook(features):
      def align():
        partner = features[plan.permutation]
        return align_ops.align_mix(features, partner, plan.lam, direction, options.eps, options.max_iter)

      return jax.lax.cond(aligned, align, lambda: features)

    stage_hook = None
    if options.alternate == "mixup":
      images = jnp.where(aligned, images, mixing.mixup(images, labels, plan).images)
    elif options.alternate == "manifoldmix":
      stage_hook = manifold_hook(plan, labels, self.options.mixup.manifoldmix_stages, rng, active=~aligned)
    output, updates = nets.classifier.apply(
      variables, images, train=True, stage_hook=stage_hook, head_hook=head_hook, mutable=["batch_stats"],
      rngs=drop_path_rngs(rng),
    )  # fmt: skip
    mixed_labels, lams = plan_labels(labels, plan)
    return output.logits["one"], mixed_labels, lams, updates.get("batch_stats", {})
