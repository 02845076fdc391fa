"""Co-Mixup (Kim et al., ICLR 2021, as the authors' code trains it; docs/method.md#co-mixup).

Per step, on each device's shard:

  1. the clean pass: the classifier in train mode on the clean batch (its BatchNorm statistics updated), the
     clean loss 2 × comixup.clean_lam × cross-entropy / classes, and the saliency: the root mean square over
     the channels of that loss's gradient with respect to the input, [B, H, W] (with clean_lam = 0: an
     eval-mode pass, no clean loss, as the reference);
  2. the mix: the batch cut into groups of `comixup.part`, each group's outputs labelled jointly
     (`comixup.mix`: saliency, smoothness, a Dirichlet(mixup.alpha) prior and the outputs' diversity);
  3. the mixed pass (train mode, after the clean pass's statistics) and the reference's loss: binary
     cross-entropy between the softmax and each output's soft label (its inputs' shares of its blocks),
     averaged over the batch and the classes; the total is the clean loss plus it.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import comixup as comixup_ops
from adamix_jax import mixing
from adamix_jax.config import ConfigError
from adamix_jax.methods.base import Networks, train_pass
from adamix_jax.methods.static_mixup import StaticMixup, StaticMixupOptions, mixed_accuracy
from adamix_jax.options import option


@dataclasses.dataclass(frozen=True)
class CoMixupOptions(StaticMixupOptions):
  """A static mixup's options (`mixup.alpha` is the Dirichlet prior's) and Co-Mixup's own (`config.comixup`)."""

  comixup: comixup_ops.CoMixupOptions = option("comixup")


def softmax_binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """The reference's loss, BCELoss(softmax(logits), targets): float32 logits and targets [B, C], the mean
  over both axes of −(t log p + (1 − t) log(1 − p)), each log bounded below by −100 as PyTorch's."""
  probs = jax.nn.softmax(logits.astype(jnp.float32), -1)
  log_p = jnp.maximum(jnp.log(probs), -100.0)
  log_not_p = jnp.maximum(jnp.log1p(-probs), -100.0)
  return -jnp.mean(targets * log_p + (1 - targets) * log_not_p)


class CoMixup(StaticMixup):
  """Co-Mixup (options: CoMixupOptions; the authors' CIFAR-100 settings are base_config()'s)."""

  name = "comixup"
  accepts_dm = False
  Options = CoMixupOptions

  def make_networks(self, classifier, image_shape):
    """The classifier alone; first checks that the images suit the options (one line, before compiling)."""
    height, width, _ = image_shape
    if height != width:
      raise ConfigError(f"comixup needs square images, not {height}x{width}.")
    self.options.comixup.check_size(height)
    return Networks(classifier)

  def clean_pass(self, nets, variables, images, labels, rng):
    """(clean loss, saliency [B, H, W], batch_stats after the pass) of the clean batch (step 1 above)."""
    weight = 2 * self.options.comixup.clean_lam

    def clean_loss(x):
      if weight == 0:
        logits = nets.classifier.apply(variables, x, train=False).logits["one"]
        return self.cross_entropy(logits, labels), variables["batch_stats"]
      output, batch_stats = train_pass(
        nets.classifier, variables["params"], variables["batch_stats"], x, rng=rng, index=1
      )
      return weight * self.cross_entropy(output.logits["one"], labels) / output.logits["one"].shape[-1], batch_stats

    (loss, batch_stats), gradient = jax.value_and_grad(clean_loss, has_aux=True)(images)
    saliency = jax.lax.stop_gradient(jnp.sqrt(jnp.mean(gradient.astype(jnp.float32) ** 2, axis=-1)))
    return (loss if weight else jnp.float32(0)), saliency, batch_stats

  def mix(self, images, labels, key, saliency=None) -> mixing.MixResult:
    """The mixed batch of images [B, H, W, C] and labels [B] with their saliency [B, H, W] (`saliency`)."""
    if saliency is None:
      raise ValueError("Co-Mixup mixes by saliency: pass the saliency [B, H, W] of its clean pass (clean_pass).")
    return comixup_ops.mix(images, labels, saliency, key, self.options.mixup.alpha, self.options.comixup)

  def preview(self, nets, state, images, labels, rng):
    _, saliency, _ = self.clean_pass(nets, state.variables(), images, labels, None)
    return self.mix(images, labels, jax.random.split(rng)[0], saliency)

  def mixed_loss(self, logits, labels, lams):
    """The reference's binary cross-entropy of the softmax against the soft labels (labels, lams [K, B])."""
    targets = jnp.einsum("kb,kbc->bc", lams, jax.nn.one_hot(labels, logits.shape[-1]))
    return softmax_binary_cross_entropy(logits, targets)

  def loss(self, nets, params, state, batch, rng):
    mix_key, other_key = jax.random.split(rng)
    images, labels = batch["images"], batch["labels"]
    variables = {"params": params["classifier"], "batch_stats": state.batch_stats["classifier"]}
    clean_loss, saliency, batch_stats = self.clean_pass(nets, variables, images, labels, other_key)
    mixed = self.mix(images, labels, mix_key, saliency)
    after_clean = {"params": variables["params"], "batch_stats": batch_stats}
    logits, sources, lams, batch_stats = self.classify(nets, after_clean, mixed, other_key)
    mixed_loss = self.mixed_loss(logits, sources, lams)
    loss = clean_loss + mixed_loss
    metrics = {"loss": loss, "clean_loss": clean_loss, "mixed_loss": mixed_loss}
    return loss, ({"classifier": batch_stats}, metrics | {"accuracy": mixed_accuracy(logits, sources, lams)})
