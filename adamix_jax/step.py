"""The jitted training and evaluation steps, with per-device semantics over a ('data',) mesh.

The step is written as `pmap` code is written and run with `jax.shard_map` inside `jax.jit`: each device
sees its own shard of the batch, draws its own randomness (the key folded with the step and the device
index), normalises with its own BatchNorm statistics unless `config.model.sync_batch_norm` is set, and the
gradients are averaged with `lax.pmean`. On one device this is exactly a single-GPU run of the original.

Running BN statistics computed per device are averaged over the devices after each step, so the state
stays replicated and evaluation uses one set of statistics (the original, without SyncBN, keeps rank 0's).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from adamix_jax import losses, schedules
from adamix_jax.data import DataInfo, normalize
from adamix_jax.methods import Method, Networks
from adamix_jax.train_state import TrainState, ema_update

AXIS = "data"


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D ('data',) mesh over the first `num_devices` devices (0: all of them)."""
  devices = jax.devices()
  if num_devices > len(devices):
    raise ValueError(f"config.num_devices = {num_devices}, but JAX sees only {len(devices)} devices: {devices}.")
  return Mesh(np.asarray(devices[: num_devices or len(devices)]), (AXIS,))


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


def replicate(mesh: Mesh, tree):
  """Places a tree on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def make_train_step(
  method: Method,
  nets: Networks,
  tx: optax.GradientTransformation,
  config: ml_collections.ConfigDict,
  info: DataInfo,
  mesh: Mesh,
  total_steps: int,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
  """The jitted step: (state, batch of uint8 images and labels) -> (next state, device-mean metrics).

  The state is donated: do not reuse the state passed in.
  """

  def per_device(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    rng = jax.random.fold_in(rng, lax.axis_index(AXIS))
    batch = {"images": normalize(batch["images"], info.mean, info.std), "labels": batch["labels"]}
    # Differentiate a device-local copy of the replicated parameters: its gradient is this device's alone
    # (shard_map would otherwise sum the gradient of a replicated input over the devices), then average.
    local_params = jax.tree.map(lambda x: lax.pcast(x, AXIS, to="varying"), state.params)
    grad_fn = jax.value_and_grad(method.loss, argnums=1, has_aux=True)
    (_, (batch_stats, metrics)), grads = grad_fn(nets, local_params, state, batch, rng)
    grads, batch_stats, metrics = lax.pmean((grads, batch_stats, metrics), AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    rate = schedules.ema_rate(
      state.step, total_steps, config.ema.momentum, config.ema.end_momentum, config.ema.adjust_start
    )
    ema_params = ema_update(state.ema_params, params["classifier"], rate)
    next_state = state.replace(
      step=state.step + 1, params=params, ema_params=ema_params, batch_stats=batch_stats, opt_state=opt_state
    )
    return next_state, metrics

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
  return jax.jit(step, donate_argnums=0)


def make_eval_step(
  method: Method, nets: Networks, info: DataInfo, mesh: Mesh
) -> Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]]:
  """The jitted evaluation of the online and EMA networks on one padded batch.

  Returns:
    A function (state, {"images", "labels", "mask"}) -> {"<online|ema>/<head>/top1": count,
    ".../top5": count, "count": examples}, summed over the devices; padding is not counted.
  """

  def per_device(state: TrainState, batch):
    images = normalize(batch["images"], info.mean, info.std)
    mask = batch["mask"].astype(jnp.float32)
    counts = {"count": jnp.sum(mask)}
    for model, params, stats in (
      ("online", state.params["classifier"], state.batch_stats["classifier"]),
      ("ema", state.ema_params, state.teacher_batch_stats()),
    ):
      output = nets.classifier.apply({"params": params, "batch_stats": stats}, images, train=False)
      for head in method.head_names:
        logits = output.logits[head]
        for k in (1, 5):
          counts[f"{model}/{head}/top{k}"] = jnp.sum(losses.top_k_correct(logits, batch["labels"], k) * mask)
    return lax.psum(counts, AXIS)

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P())
  return jax.jit(step)
