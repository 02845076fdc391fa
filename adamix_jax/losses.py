"""Classification losses: pure, jittable, batch means, computed in float32 (or float64 if given).

Mixed targets have one form everywhere: `labels` int [N, B] (the class of each of the N sources of every
example) and `lams` [N] or [N, B] (their weights, summing to 1 over N), as `mixing.MixResult` holds them.
For two sources: `labels = jnp.stack([y_a, y_b])`, `lams = jnp.stack([lam, 1 - lam])`.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from adamix_jax.options import Options, non_negative, one_of, option, unit_interval

DM_MODES = ("both", "less", "more")
OFFICIAL_MIXED_WEIGHT = 1e-3  # The official DM counts a class as mixed in a row when its weight exceeds this.


@dataclasses.dataclass(frozen=True)
class DecoupledMixupOptions(Options):
  """The Decoupled Mixup loss's options (`config.loss.dm`; `decoupled_mixup_loss` says what each does).
  eta = 0 turns DM off: the mixup cross-entropy alone."""

  section = "loss.dm"
  eta: float = option("eta", non_negative)
  mode: str = option("mode", one_of(DM_MODES))
  lam_power: float = option("lam_power", non_negative)
  threshold: float = option("threshold", unit_interval)
  official_pairing: bool = option("official_pairing")

  def loss(self, logits, labels, lams, weights=None, label_smoothing: float = 0.0) -> jax.Array:
    """decoupled_mixup_loss with these options."""
    return decoupled_mixup_loss(
      logits, labels, lams, eta=self.eta, mode=self.mode, lam_power=self.lam_power, threshold=self.threshold,
      official_pairing=self.official_pairing, weights=weights, label_smoothing=label_smoothing,
    )  # fmt: skip


def _at_least_float32(x: jax.Array) -> jax.Array:
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """mean(weights * values) over the batch: rows of weight 0 count in the denominator (sum / B)."""
  return jnp.mean(values if weights is None else _at_least_float32(weights) * values)


def _smoothed(nll: jax.Array, log_probs: jax.Array, label_smoothing: float) -> jax.Array:
  """Per-row loss against the target (1 - eps) * target + eps / C, from its unsmoothed part `nll` [B]:
  (1 - eps) * nll + eps * mean_c(-log p_c) (OpenMixup's LabelSmoothLoss, mode "original")."""
  if not label_smoothing:
    return nll
  return (1 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)


def cross_entropy(
  logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None, label_smoothing: float = 0.0
) -> jax.Array:
  """Softmax cross-entropy averaged over the batch.

  Args:
    logits: [B, C] (any float dtype; cast to float32).
    labels: int [B] class indices.
    weights: optional [B] per-example weights (e.g. a pseudo-label mask); the sum is still divided by B.
    label_smoothing: eps of the smoothed target (1 - eps) * onehot + eps / C; 0 is plain cross-entropy.

  Returns:
    A float32 scalar.
  """
  logits = _at_least_float32(logits)
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if label_smoothing:
    nll = _smoothed(nll, jax.nn.log_softmax(logits, axis=-1), label_smoothing)
  return _weighted_mean(nll, weights)


def pseudo_labels(teacher_logits: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """FixMatch's hard pseudo-labels: the teacher's top class, kept where its probability >= threshold.

  Args:
    teacher_logits: [B, C].
    threshold: the confidence a pseudo-label needs (0.95 in FixMatch).

  Returns:
    (labels int32 [B], mask float32 [B] of 1s where kept, top probability float32 [B]), without gradient.
  """
  probs = jax.nn.softmax(_at_least_float32(jax.lax.stop_gradient(teacher_logits)), axis=-1)
  confidence = jnp.max(probs, axis=-1)
  return jnp.argmax(probs, axis=-1).astype(jnp.int32), (confidence >= threshold).astype(jnp.float32), confidence


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Whether `labels` [B] is among the k highest `logits` [B, C]: bool [B]."""
  _, top = jax.lax.top_k(logits, min(k, logits.shape[-1]))
  return jnp.any(top == labels[:, None], axis=-1)


def _per_example(lams: jax.Array, labels: jax.Array) -> jax.Array:
  """Weights [N] or [N, B] as float32 [N, B]."""
  return jnp.broadcast_to(_at_least_float32(jnp.asarray(lams)).reshape(labels.shape[0], -1), labels.shape)


def mixup_cross_entropy(
  logits: jax.Array,
  labels: jax.Array,
  lams: jax.Array,
  weights: jax.Array | None = None,
  label_smoothing: float = 0.0,
) -> jax.Array:
  """Cross-entropy with the soft target sum_i lams_i onehot(labels_i), batch mean.

  Args:
    logits: [B, C].
    labels: int [N, B], the class of each of the N mixed sources.
    lams: [N] or [N, B], the weight of each source (summing to 1 over N).
    weights: optional [B] per-example weights; the sum is still divided by B.
    label_smoothing: eps; the target becomes (1 - eps) * target + eps / C.

  Returns:
    A float32 scalar.
  """
  log_probs = jax.nn.log_softmax(_at_least_float32(logits), axis=-1)
  picked = jnp.take_along_axis(log_probs[None], labels[..., None], axis=-1)[..., 0]  # [N, B]
  nll = -jnp.sum(_per_example(lams, labels) * picked, axis=0)
  return _weighted_mean(_smoothed(nll, log_probs, label_smoothing), weights)


def _decoupled_terms(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """-log of each source's probability with the other mixed classes removed from the softmax.

  For source i with class y_i and S the row's set of mixed classes:
  -log(exp(z_{y_i}) / (exp(z_{y_i}) + sum_{c not in S} exp(z_c))).

  Returns:
    (terms [N, B], number of distinct mixed classes per row [B]).
  """
  logits = _at_least_float32(logits)
  num_classes = logits.shape[-1]
  in_mix = jnp.any(jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_), axis=0)  # [B, C]
  rest = jax.nn.logsumexp(jnp.where(in_mix, -jnp.inf, logits), axis=-1)  # [B]; -inf if every class is mixed.
  own = jnp.take_along_axis(logits[None], labels[..., None], axis=-1)[..., 0]  # [N, B]
  return jnp.logaddexp(own, rest[None]) - own, jnp.sum(in_mix, axis=-1)


def _eta_scale(weights: jax.Array, eta: float, lam_power: float) -> jax.Array:
  """OpenMixup's 'pow' scaling of each selected weight u: eta * u**|p| for 0 < u < 1, eta for u >= 1, 0 for u = 0."""
  scaled = eta * jnp.power(jnp.clip(weights, 1e-12, 1.0), abs(lam_power))
  return jnp.where(weights <= 0, 0.0, jnp.where(weights >= 1, eta, scaled))


def decoupled_mixup_loss(
  logits: jax.Array,
  labels: jax.Array,
  lams: jax.Array,
  *,
  eta: float,
  mode: str = "both",
  lam_power: float = 1.0,
  threshold: float = 0.5,
  official_pairing: bool = False,
  weights: jax.Array | None = None,
  label_smoothing: float = 0.0,
) -> jax.Array:
  """Decoupled Mixup: mixup cross-entropy plus the decoupled regulariser (docs/method.md#decoupled-mixup).

  Per example with p = softmax(z), sources i with classes y_i and weights lam_i, and S the example's set
  of mixed classes::

    L = -sum_i lam_i log p_{y_i} + sum_i eta_i (-log e^{z_{y_i}} / (e^{z_{y_i}} + sum_{c not in S} e^{z_c})).

  For two sources a, b the regulariser's terms are -log p_a / (1 - p_b) and -log p_b / (1 - p_a). Its
  targets are hard 1s. eta_i = eta * u_i**|lam_power| of the selected weights u: mode "both" keeps every
  lam_i; for two sources "less" keeps only the minority source (lam_a < threshold ? a : b) and "more" only
  the majority (lam_a >= threshold ? a : b). Examples with a single distinct class get the cross-entropy only.

  Args:
    logits: [B, C].
    labels: int [N, B].
    lams: [N] or [N, B], summing to 1 over N.
    eta: the regulariser's weight.
    mode: one of DM_MODES; "less" and "more" need N = 2.
    lam_power: p of the weight scaling (0: a constant eta).
    threshold: the minority/majority boundary of "less" and "more".
    official_pairing: reproduce the official code instead of the intended pairing (N = 2 only). There a
      row counts as mixed when its two classes differ and both weights exceed 1e-3; only mixed rows get the
      regulariser. eta_a and eta_b are given to the two classes in the class-index order of the first mixed
      row (swapped for the whole batch when its y_a > y_b), and the regulariser is skipped everywhere when
      that row's lam_a is 0.5.
    weights: optional [B] per-example weights of the whole loss (DMixMatch's pseudo-label mask); the
      sum is still divided by B.
    label_smoothing: eps of the cross-entropy's smoothed target (mixup_cross_entropy). The regulariser
      keeps its hard targets (in the official code a smoothed target makes every class a "1" there).

  Returns:
    A float32 scalar.
  """
  if mode not in DM_MODES:
    raise ValueError(f"mode = {mode!r} is not known. Valid choices: {', '.join(DM_MODES)}.")
  if (mode != "both" or official_pairing) and labels.shape[0] != 2:
    raise ValueError(
      f"mode = {mode!r} with official_pairing = {official_pairing} needs 2 sources, not {labels.shape[0]}."
    )
  lams = _per_example(lams, labels)
  selected = lams
  if mode != "both":
    keep_a = lams[0] < threshold if mode == "less" else lams[0] >= threshold
    selected = lams * jnp.stack([keep_a, ~keep_a])
  etas = _eta_scale(selected, eta, lam_power)  # [N, B]
  regulariser_on = jnp.ones(labels.shape[1:], jnp.bool_)
  if official_pairing:  # The official code sets the unmixed rows aside, then reads the first mixed row.
    mixed = (labels[0] != labels[1]) & (jnp.min(lams, axis=0) > OFFICIAL_MIXED_WEIGHT)
    first = jnp.argmax(mixed)
    etas = jnp.where(labels[0, first] > labels[1, first], etas[::-1], etas)
    regulariser_on &= mixed & (lams[0, first] != 0.5)
  terms, num_mixed = _decoupled_terms(logits, labels)
  regulariser = jnp.where(regulariser_on & (num_mixed >= 2), jnp.sum(etas * terms, axis=0), 0.0)
  mixup_term = mixup_cross_entropy(logits, labels, lams, weights, label_smoothing)
  return mixup_term + _weighted_mean(regulariser, weights)
