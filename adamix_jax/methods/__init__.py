"""Training methods, selectable by `config.method`."""

from adamix_jax.methods.base import Method, Networks
from adamix_jax.methods.erm import ERM

METHODS: dict[str, Method] = {method.name: method for method in (ERM(),)}

__all__ = ["METHODS", "ERM", "Method", "Networks"]
