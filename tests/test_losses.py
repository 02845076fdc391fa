"""Losses: the official golden values (tests/golden/README.md), gradients, properties."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import official_dm
import pytest

from adamix_jax import losses

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
with open(os.path.join(GOLDEN, "summary.json")) as f:
  CASES = json.load(f)["losses"]
LOGITS = np.load(os.path.join(GOLDEN, "losses.npz"))["logits"]

# tests/golden/README.md: the values with the intended pairing (eta_a with y_a in every row).
INTENDED = {
  "DM_eta0.1_both_idx1_rowA": 3.9057476113,
  "DM_eta0.1_both_idx1_rowB": 3.7056161787,
  "DM_eta0.1_both_idx0": 4.2153414521,
  "DM_eta0.1_less_idx0.5_rowA": 3.7602427933,
  "DM_eta0.1_less_idx0.5_rowB": 3.6031395068,
  "DM_eta0.01_more_idx0.5_rowA": 3.6187391173,
}


def two_sources(labels_a, labels_b, lam):
  """The N-source form of a two-source mix: labels [2, B], lams [2] (scalar lam) or [2, B]."""
  lam = np.asarray(lam, np.float64)
  return np.stack([np.asarray(labels_a), np.asarray(labels_b)]), np.stack([lam, 1 - lam])


def _dm_args(name):
  _, eta, mode, power, *_ = name.split("_")
  case = CASES[name]
  labels, lams = two_sources(case["y_a"], case["y_b"], case["lam"])
  return labels, lams, dict(eta=float(eta[3:]), mode=mode, lam_power=float(power[3:]))


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_decoupled_mixup_loss_reproduces_official_values_with_compat_flag(name):
  labels, lams, kwargs = _dm_args(name)
  loss = losses.decoupled_mixup_loss(LOGITS, labels, lams, official_pairing=True, **kwargs)
  assert float(loss) == pytest.approx(CASES[name]["loss"], abs=1e-6)


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_decoupled_mixup_loss_intended_pairing_by_default(name):
  labels, lams, kwargs = _dm_args(name)
  assert float(losses.decoupled_mixup_loss(LOGITS, labels, lams, **kwargs)) == pytest.approx(INTENDED[name], abs=1e-6)


def test_mixup_cross_entropy_golden_with_two_and_three_sources():
  case = CASES["plainCE"]
  loss = losses.mixup_cross_entropy(LOGITS, *two_sources(case["y_a"], case["y_b"], case["lam"]))
  assert float(loss) == pytest.approx(case["loss"], abs=1e-6)
  case = CASES["co_loss_N3"]
  loss = losses.mixup_cross_entropy(LOGITS, np.array(case["y"]), np.array(case["lam"]))
  assert float(loss) == pytest.approx(case["loss"], abs=1e-6)


def test_mixup_cross_entropy_is_linear_in_lam_and_reduces_to_ce():
  labels_a, labels_b = np.array(CASES["plainCE"]["y_a"]), np.array(CASES["plainCE"]["y_b"])
  ce_a, ce_b = losses.cross_entropy(LOGITS, labels_a), losses.cross_entropy(LOGITS, labels_b)
  for lam in (0.0, 0.25, 1.0):
    assert float(losses.mixup_cross_entropy(LOGITS, *two_sources(labels_a, labels_b, lam))) == pytest.approx(
      lam * float(ce_a) + (1 - lam) * float(ce_b), rel=1e-6
    )


def test_per_example_lam_equals_rowwise_computation():
  case = CASES["DM_eta0.1_both_idx1_rowB"]
  labels_a, labels_b = np.array(case["y_a"]), np.array(case["y_b"])
  lam = np.linspace(0.1, 0.9, 6)
  kwargs = dict(eta=0.1, mode="less", lam_power=0.5)
  rows = [
    losses.decoupled_mixup_loss(LOGITS[i, None], *two_sources(labels_a[i, None], labels_b[i, None], lam[i]), **kwargs)
    for i in range(6)
  ]
  batch = losses.decoupled_mixup_loss(LOGITS, *two_sources(labels_a, labels_b, lam), **kwargs)
  assert float(batch) == pytest.approx(float(np.mean(rows)), rel=1e-6)


def test_decoupled_term_is_the_softmax_without_the_competing_class():
  z = np.array([[1.0, 2.0, 0.5, -1.0]])
  p = np.exp(z) / np.exp(z).sum()
  lam = 0.3
  loss = losses.decoupled_mixup_loss(z, *two_sources([0], [1], lam), eta=1.0, mode="both", lam_power=0)
  expected = -lam * np.log(p[0, 0]) - (1 - lam) * np.log(p[0, 1])
  expected += -np.log(p[0, 0] / (1 - p[0, 1])) - np.log(p[0, 1] / (1 - p[0, 0]))
  assert float(loss) == pytest.approx(expected, rel=1e-6)
  # Two sources of the same class: cross-entropy only.
  same = losses.decoupled_mixup_loss(z, *two_sources([2], [2], lam), eta=1.0)
  assert float(same) == pytest.approx(-np.log(p[0, 2]), rel=1e-6)


def test_three_source_dm_removes_every_other_mixed_class():
  """N = 3, mode "both": eta * lam_i (-log e^{z_i} / (e^{z_i} + sum of the unmixed classes)) per source."""
  z = np.array([[1.0, 2.0, 0.5, -1.0, 0.2]])
  lams = np.array([0.5, 0.3, 0.2])
  loss = losses.decoupled_mixup_loss(z, np.array([[0], [1], [2]]), lams, eta=0.1, lam_power=1.0)
  p = np.exp(z[0]) / np.exp(z[0]).sum()
  rest = np.exp(z[0, 3:]).sum()
  expected = -np.sum(lams * np.log(p[:3]))
  expected += np.sum(0.1 * lams * -np.log(np.exp(z[0, :3]) / (np.exp(z[0, :3]) + rest)))
  assert float(loss) == pytest.approx(expected, rel=1e-6)
  with pytest.raises(ValueError, match="needs 2 sources, not 3"):
    losses.decoupled_mixup_loss(z, np.array([[0], [1], [2]]), lams, eta=0.1, mode="less")


@pytest.mark.parametrize("mode,power", [("both", 1.0), ("less", 0.5), ("more", 0.0)])
def test_gradients_match_finite_differences(mode, power):
  with jax.enable_x64(True):
    logits = jnp.asarray(LOGITS, jnp.float64)
    labels, lams = two_sources(CASES["plainCE"]["y_a"], CASES["plainCE"]["y_b"], 0.3)
    loss = lambda z: losses.decoupled_mixup_loss(z, labels, lams, eta=0.5, mode=mode, lam_power=power)
    grad = np.asarray(jax.grad(loss)(logits))
    direction = np.random.default_rng(0).normal(size=LOGITS.shape)
    eps = 1e-3
    numeric = (float(loss(logits + eps * direction)) - float(loss(logits - eps * direction))) / (2 * eps)
  assert float(np.sum(grad * direction)) == pytest.approx(numeric, rel=1e-3)


def test_unknown_mode_is_rejected():
  with pytest.raises(ValueError, match="Valid choices: both, less, more"):
    losses.decoupled_mixup_loss(LOGITS, *two_sources(np.zeros(6, int), np.ones(6, int), 0.3), eta=0.1, mode="most")


def _smoothed_reference(logits, labels, lams, eps):
  """-sum_c target_c log p_c with target = (1 - eps) sum_i lams_i onehot(labels_i) + eps / C, in float64."""
  logits = np.asarray(logits, np.float64)
  log_probs = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True))
  log_probs -= logits.max(-1, keepdims=True)
  num_classes = logits.shape[-1]
  target = np.zeros_like(logits)
  for i in range(labels.shape[0]):
    target[np.arange(labels.shape[1]), labels[i]] += np.broadcast_to(lams[i], labels.shape[1:])
  target = (1 - eps) * target + eps / num_classes
  return np.mean(-np.sum(target * log_probs, -1))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_is_cross_entropy_with_the_smoothed_target(eps):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 10)) * 3
  labels = rng.integers(0, 10, size=(2, 6))
  lams = np.stack([np.full(6, 0.7), np.full(6, 0.3)])
  mixed = losses.mixup_cross_entropy(jnp.asarray(logits, jnp.float32), labels, lams, label_smoothing=eps)
  plain = losses.cross_entropy(jnp.asarray(logits, jnp.float32), labels[0], label_smoothing=eps)
  np.testing.assert_allclose(mixed, _smoothed_reference(logits, labels, lams, eps), rtol=1e-5)
  np.testing.assert_allclose(plain, _smoothed_reference(logits, labels[:1], np.ones((1, 6)), eps), rtol=1e-5)
  if eps:  # Smoothing moves the loss of a confident, correct prediction up.
    confident = jnp.asarray(np.eye(10)[labels[0]] * 20, jnp.float32)
    assert losses.cross_entropy(confident, labels[0], label_smoothing=eps) > 1.0
    assert losses.cross_entropy(confident, labels[0]) < 1e-6


def test_label_smoothing_leaves_the_decoupled_regulariser_unsmoothed():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(8, 10)), jnp.float32)
  labels, lams = two_sources(rng.integers(0, 10, 8), rng.integers(0, 10, 8), 0.3)
  options = dict(eta=0.1, mode="both", lam_power=1.0)
  smoothed = losses.decoupled_mixup_loss(logits, labels, lams, label_smoothing=0.1, **options)
  plain = losses.decoupled_mixup_loss(logits, labels, lams, **options)
  difference = losses.mixup_cross_entropy(logits, labels, lams, label_smoothing=0.1) - losses.mixup_cross_entropy(
    logits, labels, lams
  )
  np.testing.assert_allclose(smoothed - plain, difference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_the_transcribed_official_loss_reproduces_the_golden_values(name):
  case = CASES[name]
  _, eta, mode, power, *_ = name.split("_")
  etas = official_dm.eta_weights(case["lam"], float(eta[3:]), mode, float(power[3:]), 0.5)
  value = official_dm.soft_mix_cross_entropy(LOGITS, case["y_a"], case["y_b"], case["lam"], etas)
  assert value == pytest.approx(case["loss"], abs=1e-9)


OFFICIAL_EDGE_CASES = {
  # (y_a, y_b, lam): the first row mixes one class with itself, so the official code reads the class order
  # (swapped here) and the lam = 0.5 test from row 1.
  "first_row_same_class": ([2, 7, 4, 2, 9, 0], [2, 3, 6, 5, 8, 4], 0.3),
  "first_two_rows_same_class_lam_above_half": ([2, 5, 4, 2, 9, 0], [2, 5, 6, 5, 8, 4], 0.8),
  "first_row_same_class_order_kept": ([2, 1, 4, 2, 9, 0], [2, 5, 6, 5, 8, 4], 0.3),
  "every_row_one_class": ([2, 1, 4, 2, 9, 0], [2, 1, 4, 2, 9, 0], 0.3),
  "lam_0.5_in_the_first_mixed_row": ([2, 7, 4, 2, 9, 0], [2, 3, 6, 5, 8, 4], 0.5),
  "one_minus_lam_below_1e-3": ([7, 1, 4, 2, 9, 0], [3, 5, 6, 5, 8, 4], 0.9995),
  "lam_below_1e-3": ([7, 1, 4, 2, 9, 0], [3, 5, 6, 5, 8, 4], 0.0008),
}


@pytest.mark.parametrize("mode,power", [("both", 1.0), ("less", 0.5), ("more", 0.5), ("both", 0.0)])
@pytest.mark.parametrize("case", sorted(OFFICIAL_EDGE_CASES))
def test_official_pairing_matches_the_official_loss_where_row_0_is_not_mixed(case, mode, power):
  y_a, y_b, lam = OFFICIAL_EDGE_CASES[case]
  weights = np.array([1.0, 0.0, 1.0, 1.0, 0.5, 1.0])  # DMixMatch's pseudo-label mask
  for example_weights in (None, weights):
    expected = official_dm.soft_mix_cross_entropy(
      LOGITS, y_a, y_b, lam, official_dm.eta_weights(lam, 0.1, mode, power, 0.5), example_weights
    )
    got = losses.decoupled_mixup_loss(
      LOGITS, *two_sources(y_a, y_b, lam), eta=0.1, mode=mode, lam_power=power, official_pairing=True,
      weights=example_weights,
    )  # fmt: skip
    assert float(got) == pytest.approx(expected, abs=1e-6)


def test_intended_pairing_keeps_the_regulariser_where_the_official_drops_it():
  y_a, y_b, lam = OFFICIAL_EDGE_CASES["one_minus_lam_below_1e-3"]
  labels, lams = two_sources(y_a, y_b, lam)
  intended = losses.decoupled_mixup_loss(LOGITS, labels, lams, eta=0.1)
  official = losses.decoupled_mixup_loss(LOGITS, labels, lams, eta=0.1, official_pairing=True)
  assert float(official) == pytest.approx(float(losses.mixup_cross_entropy(LOGITS, labels, lams)), abs=1e-6)
  assert float(intended) > float(official) + 1e-5
