"""adamix_jax: AdAutoMix, AutoMix, static mixups and the Decoupled Mixup loss in JAX/Flax."""

from adamix_jax import quiet as _quiet

__version__ = "0.1.0"

# TensorFlow feeds the input pipeline; its C++ start-up notices are not what a user should read first.
_quiet.import_tensorflow()
