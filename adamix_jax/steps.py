"""The jitted training and evaluation steps, with per-device semantics over the ('data',) mesh.

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
import optax
from jax import lax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from adamix_jax import losses
from adamix_jax.data import DataInfo
from adamix_jax.images import normalize
from adamix_jax.methods import Method, Networks
from adamix_jax.sharding import AXIS
from adamix_jax.train_state import EMAOptions, TrainState, next_ema

# The uint8 image arrays of a training batch (the labeled images; a semi-supervised run's two views of its
# unlabeled ones): normalised on the device. The other keys (labels) pass as they are.
IMAGE_KEYS = ("images", "weak", "strong")


def make_train_step(
  method: Method,
  nets: Networks,
  tx: optax.GradientTransformation,
  ema_options: EMAOptions,
  info: DataInfo,
  mesh: Mesh,
  total_steps: int,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
  """The jitted step: (state, batch of uint8 images and labels) -> (next state, device-mean metrics).

  After the optimiser update, the EMA network (when the state has one) moves towards the classifier at
  the rate `ema_options.rate` (`train_state.next_ema`): its parameters always; its BatchNorm statistics
  too, unless the method's loss ran it as a teacher and returned the statistics of its own passes (the
  loss's batch statistics under "teacher").
  The state is donated: do not reuse the state passed in.
  """

  def per_device(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    rng = jax.random.fold_in(rng, lax.axis_index(AXIS))
    batch = {key: normalize(x, info.mean, info.std) if key in IMAGE_KEYS else x for key, x in batch.items()}
    # Differentiate a device-local copy of the replicated parameters: its gradient is this device's alone
    # (shard_map would otherwise sum the gradient of a replicated input over the devices), then average.
    local_params = jax.tree.map(lambda x: lax.pcast(x, AXIS, to="varying"), state.params)
    grad_fn = jax.value_and_grad(method.loss, argnums=1, has_aux=True)
    (_, (batch_stats, metrics)), grads = grad_fn(nets, local_params, state, batch, rng)
    grads, batch_stats, metrics = lax.pmean((grads, batch_stats, metrics), AXIS)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    teacher_stats = batch_stats.pop("teacher", None)
    batch_stats = {**state.batch_stats, **batch_stats}  # Groups the loss does not return stay (a frozen network).
    next_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
    if state.ema is not None:
      rate = ema_options.rate(state.step, total_steps)
      next_state = next_state.replace(ema=next_ema(state.ema, next_state.variables(), rate, teacher_stats))
    return next_state, metrics

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
  return jax.jit(step, donate_argnums=0)


def make_eval_step(
  method: Method, nets: Networks, info: DataInfo, mesh: Mesh
) -> Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]]:
  """The jitted evaluation of the online network (and the EMA network, if the state has one) on one batch.

  Returns:
    A function (state, {"images", "labels", "mask"}) -> {"<online|ema>/<head>/top1": count,
    ".../top5": count, "count": examples}, summed over the devices; padding is not counted.
  """

  def per_device(state: TrainState, batch):
    images = normalize(batch["images"], info.mean, info.std)
    mask = batch["mask"].astype(jnp.float32)
    counts = {"count": jnp.sum(mask)}
    for network in state.networks:
      output = nets.classifier.apply(state.variables(network), images, train=False)
      for head in method.head_names:
        logits = output.logits[head]
        for k in (1, 5):
          counts[f"{network}/{head}/top{k}"] = jnp.sum(losses.top_k_correct(logits, batch["labels"], k) * mask)
    return lax.psum(counts, AXIS)

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P())
  return jax.jit(step)
