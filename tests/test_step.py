"""The jitted step over the ('data',) mesh: 1 device vs 8, per-device semantics, EMA, no retracing."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config, tiny_run

from adamix_jax import data, schedules, sharding, steps


def _setup(config):
  mesh, _, state, train_step = tiny_run(config, total_steps=100)
  return mesh, state, train_step


def _run(config, batches):
  mesh, state, train_step = _setup(config)
  for batch in batches:
    state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
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
  for name in ("params", "ema", "batch_stats"):
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
    state, metrics = train_step(jax.tree.map(jnp.copy, initial), sharding.shard_batch(mesh, shard))
    singles.append(jax.device_get((state, metrics)))
  mean_state = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *[state for state, _ in singles])
  for name in ("params", "ema", "batch_stats"):
    chex.assert_trees_all_close(getattr(eight, name), getattr(mean_state, name), rtol=1e-4, atol=1e-6)
  assert metrics_eight["loss"] == pytest.approx(np.mean([m["loss"] for _, m in singles]), rel=1e-5)


@pytest.mark.slow
def test_tracked_ema_follows_the_new_parameters_and_statistics_and_compiles_once(tfds_dir, batches):
  """ERM with config.ema.track: the EMA network averages the classifier's parameters and BN statistics."""
  config = tiny_config(tfds_dir, batch_size=16, **{"ema.track": True})
  mesh, state, train_step = _setup(config)
  initial = jax.device_get(state)
  state, _ = train_step(state, sharding.shard_batch(mesh, batches[0]))
  after = jax.device_get(state)
  rate = float(schedules.ema_rate(0, 100, config.ema.momentum, config.ema.end_momentum, config.ema.adjust_start))
  ema = lambda t, o: (1 - rate) * t + rate * o
  expected = jax.tree.map(ema, initial.ema["params"], after.params["classifier"])
  chex.assert_trees_all_close(after.ema["params"], expected, rtol=1e-6, atol=1e-7)
  expected = jax.tree.map(ema, initial.ema["batch_stats"], after.batch_stats["classifier"])
  chex.assert_trees_all_close(after.ema["batch_stats"], expected, rtol=1e-6, atol=1e-7)
  for batch in batches[1:]:
    state, _ = train_step(state, sharding.shard_batch(mesh, batch))
  assert int(jax.device_get(state.step)) == 3
  assert train_step._cache_size() == 1  # No retracing after the first step.


def test_methods_without_a_teacher_keep_no_ema_unless_asked(tfds_dir, batches):
  """ERM by default: no EMA network in the state, and evaluation reports the online network only."""
  config = tiny_config(tfds_dir, batch_size=16)
  mesh, experiment, state, train_step = tiny_run(config)
  assert state.ema is None and set(state.batch_stats) == {"classifier"}
  state, _ = train_step(state, sharding.shard_batch(mesh, batches[0]))
  info = data.data_info(config)
  eval_step = steps.make_eval_step(experiment.method, experiment.nets, info, mesh)
  batch = {**batches[1], "mask": np.ones(16, bool)}
  assert set(eval_step(state, sharding.shard_batch(mesh, batch))) == {"count", "online/one/top1", "online/one/top5"}
