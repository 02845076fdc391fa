"""Static mixups (MixUp, CutMix, FMix, ResizeMix, SaliencyMix, ManifoldMix), each with or without DM.

Each step draws a plan on every device (`mixing.sample_plan`), mixes the device's shard, and trains
`head_one` with the mixup cross-entropy, or with the Decoupled Mixup loss when `config.loss.dm.eta > 0`
(docs/method.md#decoupled-mixup). ManifoldMix mixes the hidden features at a stage drawn from
`config.mixup.manifoldmix_stages` instead of the images.
"""

import functools

import jax
import jax.numpy as jnp

from adamix_jax import losses, mixing
from adamix_jax.methods.base import Method, drop_path_rngs


class StaticMixup(Method):
  """Base of the static mixups; subclasses name the mixing operator."""

  head_names = ("one",)
  accepts_dm = True

  def operator(self):
    """The mixing function (images, labels, plan) -> MixResult, with its config options bound."""
    return mixing.OPERATORS[self.name]

  def mixed_loss(self, logits: jax.Array, labels: jax.Array, lams: jax.Array) -> jax.Array:
    """Mixup cross-entropy, or DM if config.loss.dm.eta > 0, for labels and lams [2, B]."""
    dm = self.config.loss.dm
    if dm.eta > 0:
      return losses.decoupled_mixup_loss(
        logits, labels, lams, eta=dm.eta, mode=dm.mode, lam_power=dm.lam_power, threshold=dm.threshold,
        official_pairing=dm.official_pairing, label_smoothing=self.config.loss.label_smoothing,
      )  # fmt: skip
    return self.mixup_cross_entropy(logits, labels, lams)

  def preview(self, nets, state, images, labels, rng):
    if self.name not in mixing.OPERATORS:  # ManifoldMix mixes hidden features: nothing to look at.
      return None
    plan = mixing.sample_plan(jax.random.split(rng)[0], labels.shape[0], self.config.mixup.alpha)
    return self.operator()(images, labels, plan)

  def forward(self, nets, variables, batch, plan, rng):
    """(logits of head_one [B, C], labels [2, B], lams [2, B], updated batch_stats) of the mixed batch."""
    mixed = self.operator()(batch["images"], batch["labels"], plan)
    output, updates = nets.classifier.apply(
      variables, mixed.images, train=True, mutable=["batch_stats"], rngs=drop_path_rngs(rng)
    )
    return output.logits["one"], mixed.labels, mixed.lams, updates.get("batch_stats", {})

  def loss(self, nets, params, state, batch, rng):
    plan_key, other_key = jax.random.split(rng)
    plan = mixing.sample_plan(plan_key, batch["labels"].shape[0], self.config.mixup.alpha)
    variables = {"params": params["classifier"], "batch_stats": state.batch_stats["classifier"]}
    logits, labels, lams, batch_stats = self.forward(nets, variables, batch, plan, other_key)
    loss = self.mixed_loss(logits, labels, lams)
    predicted = jnp.argmax(logits, -1)
    accuracy = jnp.mean(lams[0] * (predicted == labels[0]) + lams[1] * (predicted == labels[1]))
    return loss, ({"classifier": batch_stats}, {"loss": loss, "accuracy": accuracy})


class MixUp(StaticMixup):
  name = "mixup"


class CutMix(StaticMixup):
  name = "cutmix"


class SaliencyMix(StaticMixup):
  name = "saliencymix"


class FMix(StaticMixup):
  name = "fmix"

  def operator(self):
    return functools.partial(mixing.fmix, decay_power=self.config.mixup.fmix_decay_power)


class ResizeMix(StaticMixup):
  name = "resizemix"

  def operator(self):
    return functools.partial(mixing.resizemix, scope=tuple(self.config.mixup.resizemix_scope))


class ManifoldMix(StaticMixup):
  """MixUp of the hidden features entering a random stage (0: after the stem, 1, 2: after stages 1, 2)."""

  name = "manifoldmix"

  def forward(self, nets, variables, batch, plan, rng):
    stages = jnp.asarray(self.config.mixup.manifoldmix_stages)
    stage = stages[jax.random.randint(rng, (), 0, len(stages))]

    def hook(k, features):
      return jnp.where(stage == k, mixing.mixup(features, batch["labels"], plan).images, features)

    output, updates = nets.classifier.apply(
      variables, batch["images"], train=True, stage_hook=hook, mutable=["batch_stats"], rngs=drop_path_rngs(rng)
    )
    lam = jnp.full(batch["labels"].shape, plan.lam)
    labels = jnp.stack([batch["labels"], batch["labels"][plan.permutation]])
    return output.logits["one"], labels, jnp.stack([lam, 1 - lam]), updates.get("batch_stats", {})
