"""Classification losses: pure, jittable, batch means, computed in float32 (or float64 if given)."""

import jax
import jax.numpy as jnp
import optax


def _at_least_float32(x: jax.Array) -> jax.Array:
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy averaged over the batch.

  Args:
    logits: [B, C] (any float dtype; cast to float32).
    labels: int [B] class indices.

  Returns:
    A float32 scalar.
  """
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(_at_least_float32(logits), labels))


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Whether `labels` [B] is among the k highest `logits` [B, C]: bool [B]."""
  _, top = jax.lax.top_k(logits, min(k, logits.shape[-1]))
  return jnp.any(top == labels[:, None], axis=-1)


def _per_example(lam, batch_size: int) -> jax.Array:
  """A scalar or [B] mixing weight as float32 [B]."""
  return jnp.broadcast_to(_at_least_float32(jnp.asarray(lam)), (batch_size,))


def _log_softmax(logits: jax.Array) -> jax.Array:
  return jax.nn.log_softmax(_at_least_float32(logits), axis=-1)


def multi_source_mixup_cross_entropy(logits: jax.Array, labels: jax.Array, lams: jax.Array) -> jax.Array:
  """Cross-entropy with the target sum_i lams_i onehot(labels_i), batch mean.

  Args:
    logits: [B, C].
    labels: int [N, B], the class of each of the N mixed sources.
    lams: [N] or [N, B], the weight of each source (summing to 1 over N).
  """
  log_probs = _log_softmax(logits)
  lams = jnp.broadcast_to(_at_least_float32(jnp.asarray(lams)).reshape(labels.shape[0], -1), labels.shape)
  picked = jnp.take_along_axis(log_probs[None], labels[..., None], axis=-1)[..., 0]  # [N, B]
  return -jnp.mean(jnp.sum(lams * picked, axis=0))


def mixup_cross_entropy(logits: jax.Array, labels_a: jax.Array, labels_b: jax.Array, lam) -> jax.Array:
  """lam * CE(logits, labels_a) + (1 - lam) * CE(logits, labels_b), batch mean.

  Args:
    logits: [B, C].
    labels_a, labels_b: int [B].
    lam: scalar or [B], the weight of labels_a.
  """
  lam = _per_example(lam, logits.shape[0])
  return multi_source_mixup_cross_entropy(logits, jnp.stack([labels_a, labels_b]), jnp.stack([lam, 1 - lam]))


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
  labels_a: jax.Array,
  labels_b: jax.Array,
  lam,
  *,
  eta: float,
  mode: str = "both",
  lam_power: float = 1.0,
  threshold: float = 0.5,
  official_pairing: bool = False,
) -> jax.Array:
  """Decoupled Mixup: mixup cross-entropy plus the decoupled regulariser (ADAUTOMIX.md B.1), batch mean.

  Per example with p = softmax(z), a = labels_a, b = labels_b (a != b):
    L = -lam log p_a - (1 - lam) log p_b + eta_a (-log p_a / (1 - p_b)) + eta_b (-log p_b / (1 - p_a)).
  The regulariser's targets are hard 1s. eta_a, eta_b come from (lam, 1 - lam): mode "both" keeps both,
  "less" only the minority source (lam < threshold ? a : b), "more" only the majority (lam >= threshold ?
  a : b); each kept weight u becomes eta * u**|lam_power|. Examples whose two labels coincide get the
  cross-entropy only.

  Args:
    logits: [B, C].
    labels_a, labels_b: int [B].
    lam: scalar or [B], the weight of labels_a.
    eta: the regulariser's weight.
    mode: "both", "less" or "more".
    lam_power: p of the weight scaling (0: a constant eta).
    threshold: the minority/majority boundary of "less" and "more".
    official_pairing: reproduce the official code instead of the intended pairing: eta_a and eta_b are
      given to the two mixed classes in the class-index order of row 0 (swapped for the whole batch when
      labels_a[0] > labels_b[0]), and the regulariser is skipped when lam of row 0 is 0.5.

  Returns:
    A float32 scalar.
  """
  if mode not in ("both", "less", "more"):
    raise ValueError(f"mode = {mode!r} is not known. Valid choices: both, less, more.")
  lam = _per_example(lam, logits.shape[0])
  labels = jnp.stack([labels_a, labels_b])
  weights = jnp.stack([lam, 1 - lam])
  if mode != "both":
    keep_a = lam < threshold if mode == "less" else lam >= threshold
    weights = weights * jnp.stack([keep_a, ~keep_a])
  etas = _eta_scale(weights, eta, lam_power)  # [2, B]
  regulariser_on = jnp.ones_like(lam, jnp.bool_)
  if official_pairing:
    etas = jnp.where(labels_a[0] > labels_b[0], etas[::-1], etas)
    regulariser_on &= lam[0] != 0.5
  terms, num_mixed = _decoupled_terms(logits, labels)
  regulariser = jnp.where(regulariser_on & (num_mixed >= 2), jnp.sum(etas * terms, axis=0), 0.0)
  return mixup_cross_entropy(logits, labels_a, labels_b, lam) + jnp.mean(regulariser)


def multi_source_decoupled_mixup_loss(
  logits: jax.Array, labels: jax.Array, lams: jax.Array, *, eta: float, lam_power: float = 1.0
) -> jax.Array:
  """Decoupled Mixup for N >= 2 sources (mode "both"), batch mean.

  L = sum_i lams_i (-log p_{y_i}) + sum_i eta * lams_i**|p| (-log e^{z_{y_i}} / (e^{z_{y_i}} + sum_{c not in S}
  e^{z_c})), S the example's set of mixed classes; examples with a single distinct class get the
  cross-entropy only. (The official code never applies DM to N >= 3; this is the B.1 generalisation.)

  Args:
    logits: [B, C].
    labels: int [N, B].
    lams: [N] or [N, B], summing to 1 over N.
  """
  lams = jnp.broadcast_to(_at_least_float32(jnp.asarray(lams)).reshape(labels.shape[0], -1), labels.shape)
  terms, num_mixed = _decoupled_terms(logits, labels)
  regulariser = jnp.where(num_mixed >= 2, jnp.sum(_eta_scale(lams, eta, lam_power) * terms, axis=0), 0.0)
  return multi_source_mixup_cross_entropy(logits, labels, lams) + jnp.mean(regulariser)
