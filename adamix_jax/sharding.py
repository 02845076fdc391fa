"""The device mesh of a run and moving values between the host and it.

Every run uses a 1-D mesh whose single axis, `AXIS` ("data"), splits the batch: each device holds a
shard of every batch and a full copy (replica) of the train state.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D ('data',) mesh over the first `num_devices` devices (0: all of them)."""
  devices = jax.devices()
  if num_devices > len(devices):
    raise ValueError(f"config.num_devices = {num_devices}, but JAX sees only {len(devices)} devices: {devices}.")
  return Mesh(np.asarray(devices[: num_devices or len(devices)]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of the train state: a full copy on every device of `mesh`."""
  return NamedSharding(mesh, P())


def shard_batch(mesh: Mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Assembles each process's share of the batch into global arrays split over the data axis."""
  sharding = NamedSharding(mesh, P(AXIS))
  return {key: jax.make_array_from_process_local_data(sharding, value) for key, value in local_batch.items()}


def local_replica(tree):
  """This process's copy of replicated values: the arrays on its first device (no collectives)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def host_value(tree):
  """numpy copies of replicated device values, read from this process's replica (works on every host)."""
  return jax.device_get(local_replica(tree))
