"""Schedules, the PyTorch-SGD optimiser over parameter groups, and the EMA update."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import schedules
from adamix_jax.config import base_config
from adamix_jax.train_state import ema_update, make_optimizer


def test_cosine_per_epoch_matches_mmcv_formula():
  schedule = schedules.cosine_per_epoch(0.1, 0.05, steps_per_epoch=500, num_epochs=800)
  for step in (0, 499, 500, 123_456, 399_999):
    epoch = step // 500
    expected = 0.05 + 0.05 * (1 + math.cos(math.pi * epoch / 800)) / 2
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
  assert float(schedule(499)) == float(schedule(0)) == pytest.approx(0.1)  # Constant within an epoch.


@pytest.mark.parametrize(
  "step,expected",
  [(0, 0.999), (39_999, 0.999), (40_000, 0.99902445), (200_000, 0.9994995), (300_000, 0.9998527), (400_000, 0.999999)],
)
def test_ema_rate_worked_values(step, expected):
  """docs/method.md#the-ema-teacher: CIFAR 800 epochs, T = 400,000; the jump at 0.1 T is the original's."""
  rate = float(schedules.ema_rate(step, 400_000, base=0.999, end=0.999999, adjust_start=0.1))
  assert 1 - rate == pytest.approx(expected, abs=5e-9)
  exact = 0.999 if step < 40_000 else 0.999999 - 0.000999 * (math.cos(math.pi * step / 400_000) + 1) / 2
  assert rate == pytest.approx(1 - exact, rel=1e-5)  # The rate itself keeps float32's relative precision.


def test_ema_update_is_a_convex_combination():
  teacher, online = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, 6.0])}
  updated = ema_update(teacher, online, jnp.float32(0.1))
  np.testing.assert_allclose(updated["w"], [1.2, 2.4], rtol=1e-6)


def _torch_sgd_reference(params, grads_seq, lrs, momentum, weight_decay):
  """PyTorch SGD: d = g + wd p; buf = d (first step) else momentum buf + d; p -= lr buf."""
  buf = None
  for grad, lr in zip(grads_seq, lrs, strict=True):
    d = grad + weight_decay * params
    buf = d if buf is None else momentum * buf + d
    params = params - lr * buf
  return params


def test_optimizer_is_pytorch_sgd_with_per_group_learning_rates():
  config = base_config()
  config.num_epochs = 4
  config.optimizer.lr, config.optimizer.min_lr, config.optimizer.weight_decay = 0.1, 0.01, 1e-2
  config.optimizer.generator.lr, config.optimizer.generator.min_lr = 0.5, 0.0  # Momentum and decay: shared.
  params = {"classifier": {"w": jnp.array([1.0, -2.0])}, "generator": {"v": jnp.array([3.0])}}
  tx = make_optimizer(config, params, steps_per_epoch=2)
  state = tx.init(params)
  rng = np.random.default_rng(0)
  grads_seq = [{"classifier": {"w": rng.normal(size=2)}, "generator": {"v": rng.normal(size=1)}} for _ in range(6)]
  current = params
  for grads in grads_seq:
    grads = jax.tree.map(jnp.asarray, grads)
    updates, state = tx.update(grads, state, current)
    current = jax.tree.map(lambda p, u: p + u, current, updates)
  lr_c = [0.01 + 0.09 * (1 + math.cos(math.pi * (s // 2) / 4)) / 2 for s in range(6)]
  lr_g = [0.5 * (1 + math.cos(math.pi * (s // 2) / 4)) / 2 for s in range(6)]
  expected_w = _torch_sgd_reference(np.array([1.0, -2.0]), [g["classifier"]["w"] for g in grads_seq], lr_c, 0.9, 1e-2)
  expected_v = _torch_sgd_reference(np.array([3.0]), [g["generator"]["v"] for g in grads_seq], lr_g, 0.9, 1e-2)
  np.testing.assert_allclose(current["classifier"]["w"], expected_w, rtol=1e-5)
  np.testing.assert_allclose(current["generator"]["v"], expected_v, rtol=1e-5)
