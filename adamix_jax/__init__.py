"""adamix_jax: AdAutoMix, AutoMix, static mixups and the Decoupled Mixup loss in JAX/Flax."""

__version__ = "0.1.0"
