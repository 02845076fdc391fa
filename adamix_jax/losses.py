"""Classification losses: pure, jittable, batch means, computed in float32."""

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy averaged over the batch.

  Args:
    logits: [B, C] (any float dtype; cast to float32).
    labels: int [B] class indices.

  Returns:
    A float32 scalar.
  """
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels))


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Whether `labels` [B] is among the k highest `logits` [B, C]: bool [B]."""
  _, top = jax.lax.top_k(logits, min(k, logits.shape[-1]))
  return jnp.any(top == labels[:, None], axis=-1)
