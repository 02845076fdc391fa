"""Multi-host start-up: `jax.distributed.initialize()` when the config or the environment asks for it.

The same command runs on every host of a TPU pod slice or a GPU cluster. `config.distributed.mode`:

  - "auto" (default): initialise on a multi-host Cloud TPU VM (TPU_WORKER_HOSTNAMES lists several hosts),
    in a SLURM job of several tasks, or when a coordinator is given (the config or JAX_COORDINATOR_ADDRESS);
    never on a plain single machine.
  - "on": always initialise (JAX then auto-detects the cluster or reads the explicit settings).
  - "off": never.

On CPU (tests, debugging) the collectives across processes go through gloo.
"""

import os
from collections.abc import Mapping

import jax
import ml_collections

MODES = ("auto", "on", "off")


def detected_cluster(environ: Mapping[str, str]) -> str | None:
  """The kind of multi-host environment `environ` describes, or None on a single machine."""
  if len([h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1:
    return "multi-host Cloud TPU VM"
  if int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in environ:
    return "SLURM job with several tasks"
  if environ.get("JAX_COORDINATOR_ADDRESS"):
    return "JAX_COORDINATOR_ADDRESS"
  return None


def should_initialize(config: ml_collections.ConfigDict, environ: Mapping[str, str] = os.environ) -> bool:
  """Whether this process must join a multi-process JAX runtime (see the module docstring)."""
  mode = config.distributed.mode
  if mode == "off":
    return False
  return mode == "on" or bool(config.distributed.coordinator_address) or detected_cluster(environ) is not None


def initialize(config: ml_collections.ConfigDict, environ: Mapping[str, str] = os.environ) -> bool:
  """Initialises the multi-controller runtime if `should_initialize`; call before any other JAX work.

  Returns:
    Whether it initialised.
  """
  if not should_initialize(config, environ):
    return False
  options = config.distributed
  kwargs = {}
  if options.coordinator_address:
    kwargs = dict(
      coordinator_address=options.coordinator_address,
      num_processes=options.num_processes or None,
      process_id=None if options.process_id < 0 else options.process_id,
    )
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # Only CPU devices use it.
  jax.distributed.initialize(**kwargs)
  return True
