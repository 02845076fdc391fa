"""Semi-supervised methods: FixMatch and DMixMatch (FixMatch with Decoupled Mixup).

See docs/method.md#semi-supervised-learning.

A step sees one device's labeled batch {"images", "labels"} [b] and unlabeled batch {"weak", "strong"}
[mu b] (plus "unlabeled_labels", read by metrics only). The EMA teacher labels the weak views; the online
network learns from the labeled images and from the strong views of confidently pseudo-labeled ones.
The online passes run in the reference code's order, each with its own batch statistics: labeled,
(DMixMatch: labeled x labeled mixup), strong, (DMixMatch: labeled x unlabeled mixup).
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import losses, schedules
from adamix_jax.methods.base import Method, train_pass
from adamix_jax.options import Options, non_negative, one_of, option, positive, within


def _unsupported(value) -> str | None:
  return None if value == 0 else "is not yet supported by the semi-supervised methods: leave it 0"


@dataclasses.dataclass(frozen=True)
class FixMatchOptions(Options):
  """What FixMatch's loss reads (`config.semisup`)."""

  threshold: float = option("semisup.threshold", within(0, 1, low_open=True))  # Pseudo-label confidence.
  unlabeled_weight: float = option("semisup.unlabeled_weight", non_negative)  # Weight of the FixMatch term.
  label_smoothing: float = option("loss.label_smoothing", _unsupported)


@dataclasses.dataclass(frozen=True)
class DMixMatchOptions(FixMatchOptions):
  """FixMatch's options, DMixMatch's two mixups' alpha, its DM loss and the ramp of its last term."""

  alpha: float = option("mixup.alpha", positive)
  dm: losses.DecoupledMixupOptions = option("loss.dm")
  mix_ramp: str = option("semisup.mix_ramp", one_of(schedules.MIX_RAMPS))


# DMixMatch's labeled x unlabeled term is left out while its weight is at most this, and trains its
# head alone (the backbone's features detached) while the weight is below DETACH_BELOW.
SKIP_AT_MOST, DETACH_BELOW = 1e-5, 1e-3


class FixMatch(Method):
  """FixMatch with EMA-teacher pseudo-labels (OpenMixup's `FixMatch` with ema_pseudo = 1).

  loss = CE(labeled) + unlabeled_weight * sum_i mask_i CE(strong_i, pseudo_i) / (mu b), where pseudo_i is
  the teacher's top class on the weak view i and mask_i = [its probability >= semisup.threshold].
  """

  name = "fixmatch"
  head_names = ("one",)
  reported = "ema/one"  # The reference evaluates the EMA network.
  has_teacher = True
  semi_supervised = True
  Options = FixMatchOptions

  def unlabeled_terms(self, nets, state, batch):
    """The EMA teacher's pseudo-labels of the weak views (its train-mode pass) and their metrics.

    Returns:
      (pseudo-labels int32 [mu b], mask float32 [mu b], the teacher's new BN stats, metrics).
    """
    options = self.options
    teacher, teacher_stats = train_pass(
      nets.classifier, jax.lax.stop_gradient(state.ema["params"]), state.ema["batch_stats"], batch["weak"]
    )
    pseudo, mask, _ = losses.pseudo_labels(teacher.logits["one"], options.threshold)
    right = (pseudo == batch["unlabeled_labels"]).astype(jnp.float32)
    metrics = {
      "mask_rate": jnp.mean(mask),  # Share of unlabeled images whose pseudo-label is kept.
      "pseudo_label_accuracy": jnp.mean(right),  # Of all pseudo-labels, against the true labels.
      "kept_pseudo_label_accuracy": jnp.sum(right * mask) / jnp.maximum(jnp.sum(mask), 1.0),
    }
    return pseudo, mask, teacher_stats, metrics

  def loss(self, nets, params, state, batch, rng):
    del rng
    options, classifier = self.options, params["classifier"]
    labeled, stats = train_pass(nets.classifier, classifier, state.batch_stats["classifier"], batch["images"])
    loss_labeled = losses.cross_entropy(labeled.logits["one"], batch["labels"])
    pseudo, mask, teacher_stats, metrics = self.unlabeled_terms(nets, state, batch)
    strong, stats = train_pass(nets.classifier, classifier, stats, batch["strong"])
    loss_unlabeled = losses.cross_entropy(strong.logits["one"], pseudo, mask)
    loss = loss_labeled + options.unlabeled_weight * loss_unlabeled
    metrics |= {
      "loss": loss,
      "loss_labeled": loss_labeled,
      "loss_unlabeled": loss_unlabeled,
      "accuracy": jnp.mean(jnp.argmax(labeled.logits["one"], -1) == batch["labels"]),
    }
    return loss, ({"classifier": stats, "teacher": teacher_stats}, metrics)


def dominant_lam(key: jax.Array, alpha: float) -> jax.Array:
  """lam ~ Beta(alpha, alpha), then max(lam, 1 - lam): the first image of a mix dominates."""
  lam = jax.random.beta(key, alpha, alpha)
  return jnp.maximum(lam, 1 - lam)


class DMixMatch(FixMatch):
  """FixMatch plus two Decoupled Mixup terms on `head_mix` (OpenMixup's `DMixMatch`, MixUp mode).

  loss = FixMatch's + DM(MixUp within the labeled batch) + w(step) * DM(labeled i x weak view i, targets
  (y_i, pseudo_i), rows weighted by mask_i). Both lam are max(lam, 1 - lam). w ramps from 0 to 1
  (`schedules.mix_ramp`, `semisup.mix_ramp`); the last term is left out while w <= 1e-5 and does not
  reach the backbone while w < 1e-3. The DM options are `config.loss.dm` (its configs set eta = 1).
  """

  name = "dmixmatch"
  head_names = ("one", "mix")
  accepts_dm = True
  Options = DMixMatchOptions

  def ramp_weight(self, step: jax.Array) -> jax.Array:
    """w(step) of the labeled x unlabeled term, over the run's `total_steps`."""
    if not self.total_steps:
      raise ValueError("DMixMatch's ramp needs the run's length: construct it with total_steps.")
    return schedules.mix_ramp(self.total_steps, self.options.mix_ramp)(step)

  def loss(self, nets, params, state, batch, rng):
    options, classifier = self.options, params["classifier"]
    ll_key, perm_key, lu_key = jax.random.split(rng, 3)
    x, y = batch["images"], batch["labels"]
    labeled, stats = train_pass(nets.classifier, classifier, state.batch_stats["classifier"], x)
    loss_labeled = losses.cross_entropy(labeled.logits["one"], y)

    lam = dominant_lam(ll_key, self.options.alpha)
    perm = jax.random.permutation(perm_key, y.shape[0])
    mixed, stats = train_pass(nets.classifier, classifier, stats, lam * x + (1 - lam) * x[perm])
    lams = jnp.stack([lam, 1 - lam])
    loss_mix_labeled = self.options.dm.loss(mixed.logits["mix"], jnp.stack([y, y[perm]]), lams)

    pseudo, mask, teacher_stats, metrics = self.unlabeled_terms(nets, state, batch)
    strong, stats = train_pass(nets.classifier, classifier, stats, batch["strong"])
    loss_unlabeled = losses.cross_entropy(strong.logits["one"], pseudo, mask)

    b = y.shape[0]
    weight = self.ramp_weight(state.step)
    lam_lu = dominant_lam(lu_key, self.options.alpha)

    def labeled_x_unlabeled(stats):
      images = lam_lu * x + (1 - lam_lu) * batch["weak"][:b]
      output, stats = train_pass(nets.classifier, classifier, stats, images, detach_heads=weight < DETACH_BELOW)
      labels = jnp.stack([y, pseudo[:b]])
      return self.options.dm.loss(output.logits["mix"], labels, jnp.stack([lam_lu, 1 - lam_lu]), mask[:b]), stats

    loss_mix_unlabeled, stats = jax.lax.cond(
      weight > SKIP_AT_MOST, labeled_x_unlabeled, lambda stats: (jnp.zeros_like(loss_unlabeled), stats), stats
    )
    loss = loss_labeled + options.unlabeled_weight * loss_unlabeled + loss_mix_labeled + weight * loss_mix_unlabeled
    metrics |= {
      "loss": loss,
      "loss_labeled": loss_labeled,
      "loss_unlabeled": loss_unlabeled,
      "loss_mix_labeled": loss_mix_labeled,
      "loss_mix_unlabeled": loss_mix_unlabeled,
      "mix_weight": weight,
      "accuracy": jnp.mean(jnp.argmax(labeled.logits["one"], -1) == y),
    }
    return loss, ({"classifier": stats, "teacher": teacher_stats}, metrics)
