"""The jitted step over the ('data',) mesh: 1 device vs 8, per-device semantics, EMA, no retracing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from adamix_jax import data, schedules, step, train


def _setup(config):
  mesh = step.make_mesh(config.num_devices)
  info = data.data_info(config)
  method, nets, tx, state = train.build(config, info, mesh)
  train_step = step.make_train_step(method, nets, tx, config, info, mesh, total_steps=100)
  return mesh, state, train_step


def _run(config, batches):
  mesh, state, train_step = _setup(config)
  for batch in batches:
    state, metrics = train_step(state, step.shard_batch(mesh, batch))
  return jax.device_get(state), jax.device_get(metrics)


@pytest.fixture(scope="module")
def batches(tfds_dir):
  config = tiny_config(tfds_dir, batch_size=16)
  return list(data.InputPipeline(config, data.data_info(config)).train_batches(0))[:3]


def test_eight_devices_with_synced_batch_norm_equal_one_device(tfds_dir, batches):
  overrides = {"batch_size": 16, "model.sync_batch_norm": True}
  one, metrics_one = _run(tiny_config(tfds_dir, num_devices=1, **overrides), batches)
  eight, metrics_eight = _run(tiny_config(tfds_dir, num_devices=8, **overrides), batches)
  assert int(one.step) == int(eight.step) == 3
  for name in ("params", "ema_params", "batch_stats"):
    chex.assert_trees_all_close(getattr(one, name), getattr(eight, name), rtol=2e-4, atol=2e-5)
  # The momentum buffers sum three steps of gradients reduced in a different order: float32 round-off
  # reaches a few 1e-5 on entries of order 1e-3.
  chex.assert_trees_all_close(one.opt_state, eight.opt_state, rtol=2e-4, atol=1e-4)
  assert metrics_one["loss"] == pytest.approx(metrics_eight["loss"], rel=1e-5)


def test_without_sync_each_device_normalises_its_own_shard(tfds_dir, batches):
  """Per-device semantics: one step on 8 devices = the average of 8 one-device steps on the shards.

  The first SGD step is linear in the gradient, and the running statistics are averaged, so the whole
  state after one step is the mean over shards of the states a single device reaches on each shard.
  """
  batch = batches[0]
  eight, metrics_eight = _run(tiny_config(tfds_dir, num_devices=8, batch_size=16), [batch])
  shards = [{key: value[2 * i : 2 * i + 2] for key, value in batch.items()} for i in range(8)]
  mesh, initial, train_step = _setup(tiny_config(tfds_dir, num_devices=1, batch_size=2))
  singles = []
  for shard in shards:  # The state is donated: start each shard's step from a fresh copy.
    state, metrics = train_step(jax.tree.map(jnp.copy, initial), step.shard_batch(mesh, shard))
    singles.append(jax.device_get((state, metrics)))
  mean_state = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *[state for state, _ in singles])
  for name in ("params", "ema_params", "batch_stats"):
    chex.assert_trees_all_close(getattr(eight, name), getattr(mean_state, name), rtol=1e-4, atol=1e-6)
  assert metrics_eight["loss"] == pytest.approx(np.mean([m["loss"] for _, m in singles]), rel=1e-5)


def test_step_updates_ema_from_the_new_parameters_and_compiles_once(tfds_dir, batches):
  config = tiny_config(tfds_dir, batch_size=16)
  mesh, state, train_step = _setup(config)
  initial = jax.device_get(state)
  state, _ = train_step(state, step.shard_batch(mesh, batches[0]))
  after = jax.device_get(state)
  rate = float(schedules.ema_rate(0, 100, config.ema.momentum, config.ema.end_momentum, config.ema.adjust_start))
  expected = jax.tree.map(lambda t, o: (1 - rate) * t + rate * o, initial.ema_params, after.params["classifier"])
  chex.assert_trees_all_close(after.ema_params, expected, rtol=1e-6, atol=1e-7)
  for batch in batches[1:]:
    state, _ = train_step(state, step.shard_batch(mesh, batch))
  assert int(jax.device_get(state.step)) == 3
  assert train_step._cache_size() == 1  # No retracing after the first step.
