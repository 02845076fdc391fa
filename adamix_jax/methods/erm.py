"""ERM: plain cross-entropy on the clean batch ("Vanilla" in the paper tables)."""

import jax.numpy as jnp

from adamix_jax import losses
from adamix_jax.methods.base import Method


class ERM(Method):
  """Empirical risk minimisation with `head_one`."""

  name = "erm"
  head_names = ("one",)

  def loss(self, nets, params, state, batch, rng):
    del rng  # ERM draws nothing.
    variables = {"params": params["classifier"], "batch_stats": state.batch_stats["classifier"]}
    output, updates = nets.classifier.apply(variables, batch["images"], train=True, mutable=["batch_stats"])
    logits = output.logits["one"]
    loss = losses.cross_entropy(logits, batch["labels"])
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["labels"])
    return loss, ({"classifier": updates["batch_stats"]}, {"loss": loss, "accuracy": accuracy})
