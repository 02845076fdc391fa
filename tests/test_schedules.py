"""Schedules, the PyTorch-SGD optimiser over parameter groups, and the EMA update."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import schedules
from adamix_jax.config import base_config
from adamix_jax.train_state import OptimizerOptions, ema_update, make_optimizer


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
  tx = make_optimizer(OptimizerOptions.from_config(config), params, steps_per_epoch=2)
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


def test_per_step_cosine_with_mmcvs_linear_warmup():
  schedule = schedules.cosine_per_step(1e-3, 1e-4, total_steps=100, warmup_steps=10, warmup_ratio=1e-5)
  cosine = lambda t: 1e-4 + 9e-4 * (1 + math.cos(math.pi * t / 100)) / 2
  for t in (0, 1, 5, 9):
    np.testing.assert_allclose(schedule(t), cosine(t) * (1 - (1 - t / 10) * (1 - 1e-5)), rtol=1e-5)
  np.testing.assert_allclose(schedule(0), cosine(0) * 1e-5, rtol=1e-4)  # Starts at warmup_ratio of the lr.
  for t in (10, 50, 99, 100):
    np.testing.assert_allclose(schedule(t), cosine(t), rtol=1e-5)


def _torch_adamw_reference(params, grads_seq, lrs, betas, eps, weight_decay, decay):
  """PyTorch AdamW: p *= 1 - lr wd (if decayed); m, v moments; p -= lr m_hat / (sqrt(v_hat) + eps)."""
  m = v = np.zeros_like(params)
  for t, (grad, lr) in enumerate(zip(grads_seq, lrs, strict=True), start=1):
    if decay:
      params = params * (1 - lr * weight_decay)
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad**2
    params = params - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
  return params


def test_adamw_with_the_transformer_decay_mask_warmup_and_global_clipping():
  config = base_config()
  config.num_epochs = 3
  config.optimizer.name, config.optimizer.schedule = "adamw", "cosine_per_step"
  config.optimizer.lr, config.optimizer.min_lr, config.optimizer.weight_decay = 1e-2, 1e-3, 0.05
  config.optimizer.warmup_epochs, config.optimizer.decay_norm_and_bias = 1, False
  config.optimizer.grad_clip = 1.0
  params = {
    "classifier": {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}, "pos_embed": jnp.ones((1, 3, 2))}
  }
  tx = make_optimizer(OptimizerOptions.from_config(config), params, steps_per_epoch=2)
  state = tx.init(params)
  rng = np.random.default_rng(0)
  grads_seq = [jax.tree.map(lambda p: 3 * rng.normal(size=p.shape), params) for _ in range(6)]
  current = params
  for grads in grads_seq:
    updates, state = tx.update(jax.tree.map(jnp.asarray, grads), state, current)
    current = jax.tree.map(lambda p, u: p + u, current, updates)
  lrs = [float(schedules.cosine_per_step(1e-2, 1e-3, 6, 2, 1e-5)(t)) for t in range(6)]

  def clipped(grads):
    norm = np.sqrt(sum(np.sum(g**2) for g in jax.tree.leaves(grads)))
    return jax.tree.map(lambda g: g * min(1.0, 1.0 / norm), grads)

  seq = [clipped(g)["classifier"] for g in grads_seq]
  for path, decayed in ((("dense", "kernel"), True), (("dense", "bias"), False), (("pos_embed",), False)):
    leaf = lambda tree, path=path: tree[path[0]] if len(path) == 1 else tree[path[0]][path[1]]
    expected = _torch_adamw_reference(
      np.asarray(leaf(params["classifier"])), [leaf(g) for g in seq], lrs, (0.9, 0.999), 1e-8, 0.05, decayed
    )
    np.testing.assert_allclose(leaf(current["classifier"]), expected, rtol=1e-5, err_msg=str(path))


def test_the_decay_mask_leaves_out_norms_biases_tokens_and_position_tables():
  from adamix_jax import models
  from adamix_jax.train_state import decays

  def excluded(backbone):
    classifier = models.Classifier(backbone, 10)
    params = jax.eval_shape(lambda: classifier.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    flat = jax.tree_util.tree_flatten_with_path(decays(params["params"]))[0]
    return {"/".join(str(k.key) for k in path[-2:]) for path, keep in flat if not keep}

  deit = excluded(models.VisionTransformer(patch=16, width=12, depth=1, num_heads=3))
  assert deit == {
    "backbone/cls_token", "backbone/pos_embed", "patch_embed/bias", "norm/scale", "norm/bias", "norm1/scale",
    "norm1/bias", "norm2/scale", "norm2/bias", "qkv/bias", "proj/bias", "fc1/bias", "fc2/bias", "Dense_0/bias",
  }  # fmt: skip
  swin_excluded = excluded(models.SwinTransformer(width=6, depths=(1, 1, 1, 1), window=2))
  assert "window_attn/relative_position_bias_table" in swin_excluded
  assert not any(name.endswith("kernel") for name in swin_excluded)
  assert "stage1_block1/gamma" in excluded(models.ConvNeXt(width=8, depths=(1, 1, 1, 1)))
