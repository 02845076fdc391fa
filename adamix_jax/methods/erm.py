"""ERM: plain cross-entropy on the clean batch ("Vanilla" in the paper tables)."""

import jax.numpy as jnp

from adamix_jax.methods.base import Method, train_pass


class ERM(Method):
  """Empirical risk minimisation with `head_one`."""

  name = "erm"
  head_names = ("one",)

  def loss(self, nets, params, state, batch, rng):
    output, stats = train_pass(
      nets.classifier, params["classifier"], state.batch_stats["classifier"], batch["images"], rng=rng
    )
    logits = output.logits["one"]
    loss = self.cross_entropy(logits, batch["labels"])
    accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["labels"])
    return loss, ({"classifier": stats}, {"loss": loss, "accuracy": accuracy})
