"""Calibration, FGSM and occlusion (adamix_jax.robustness) and the `python -m adamix_jax.tools.evaluate` report."""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from adamix_jax import data, robustness, train
from adamix_jax.experiment import load_run
from adamix_jax.tools import evaluate


def test_calibration_against_hand_computed_values():
  probs = jnp.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.5, 0.5]])
  labels = jnp.array([0, 1, 1, 0, 0])
  weights = jnp.array([1.0, 1, 1, 1, 0])  # The last row is padding.
  report = robustness.calibration_report(jax.device_get(robustness.calibration_counts(probs, labels, weights)))
  # Confidences 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (wrong): bins (13/15, 14/15], (8/15, 9/15],
  # (10/15, 11/15], (11/15, 12/15]; one example each, so ECE = mean |correct - confidence|.
  expected_ece = (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.7) + abs(0 - 0.8)) / 4
  assert report["ece"] == pytest.approx(100 * expected_ece)
  assert report["nll"] == pytest.approx(-(np.log(0.9) + np.log(0.4) + np.log(0.7) + np.log(0.2)) / 4, rel=1e-6)
  brier = ((0.1**2 + 0.1**2) + (0.6**2 + 0.6**2) + (0.3**2 + 0.3**2) + (0.8**2 + 0.8**2)) / 4
  assert report["brier"] == pytest.approx(brier, rel=1e-6)
  assert sum(report["bins"]["count"]) == 4 and report["bins"]["count"][13] == 1


def _model():
  """A fixed linear model on 4x4x1 images and its summed cross-entropy."""
  w = jax.random.normal(jax.random.key(0), (16, 3))

  def logits(normalized):
    return normalized.reshape(normalized.shape[0], -1) @ w

  return logits


def _attack_setup():
  """Images in [0, 1], the summed cross-entropy of a small linear model on their normalised form, and eps."""
  logits = _model()
  labels = jnp.arange(8) % 3

  def loss(normalized):
    return -jnp.sum(jax.nn.log_softmax(logits(normalized))[jnp.arange(8), labels])

  return jax.random.uniform(jax.random.key(1), (8, 4, 4, 1)), loss, (0.5,), (0.25,), 8 / 255


def test_fgsm_raises_the_loss_within_eps_and_keeps_pixels_in_range():
  images, loss, mean, std, eps = _attack_setup()

  attacked = robustness.fgsm(loss, images, eps, mean=mean, std=std)
  pixels = attacked * 0.25 + 0.5
  assert float(loss(attacked)) > float(loss((images - 0.5) / 0.25))
  assert float(jnp.max(jnp.abs(pixels - images))) <= eps + 1e-6
  assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
  # The official variant moves the normalised tensor by eps (eps * std in pixels), unclipped.
  official = robustness.fgsm(loss, images, eps, space="normalized", mean=mean, std=std)
  np.testing.assert_allclose(jnp.abs(official - (images - 0.5) / 0.25), eps, rtol=1e-5)
  assert not np.allclose(official, attacked)
  with pytest.raises(ValueError, match="Valid choices: pixel, normalized"):
    robustness.fgsm(loss, images, eps, space="logits", mean=mean, std=std)


def test_pgd_stays_in_the_eps_ball_and_in_range_and_beats_its_random_start():
  images, loss, mean, std, eps = _attack_setup()

  start = robustness.pgd(loss, images, eps, 0, eps / 4, jax.random.key(2), mean=mean, std=std)
  attacked = robustness.pgd(loss, images, eps, 10, eps / 4, jax.random.key(2), mean=mean, std=std)
  pixels = attacked * 0.25 + 0.5
  assert float(jnp.max(jnp.abs(pixels - images))) <= eps + 1e-6
  assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
  assert float(loss(attacked)) > float(loss(start)) > 0
  fgsm = robustness.fgsm(loss, images, eps, mean=mean, std=std)
  assert float(loss(attacked)) >= float(loss(fgsm)) - 1e-3


def test_occlusion_zeroes_one_square_per_image_and_size_0_is_the_identity():
  images = jnp.ones((5, 10, 12, 3))
  assert robustness.occlude(images, 0, jax.random.key(0)) is images
  occluded = robustness.occlude(images, 4, jax.random.key(0))
  np.testing.assert_array_equal(jnp.sum(occluded == 0, axis=(1, 2, 3)), np.full(5, 4 * 4 * 3))


@pytest.fixture(scope="module")
def trained(tfds_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  summary = train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1, **{"checkpoint.asynchronous": False}), workdir)
  return workdir, summary


def test_the_report_of_a_trained_run(trained, capsys):
  workdir, summary = trained
  suites = "calibration,fgsm,occlusion,pgd"
  assert evaluate.main(["--workdir", workdir, "--occlusion_sizes", "0,4,8", "--suite", suites, "--pgd_steps", "3"]) == 0
  out = os.path.join(workdir, "robustness")
  with open(os.path.join(out, "robustness.json")) as f:
    report = json.load(f)
  assert report["top1"] == pytest.approx(summary["last_eval"]["metrics"]["online/one/top1"])
  assert report["occlusion"]["top1"][0] == pytest.approx(report["top1"])  # Size 0: the clean accuracy.
  assert report["fgsm"]["loss"] > report["fgsm"]["clean_loss"] and report["examples"] == 100
  assert report["pgd"]["steps"] == 3 and 0 <= report["pgd"]["top1"] <= report["top1"]
  assert 0 <= report["calibration"]["ece"] <= 100 and sum(report["calibration"]["bins"]["count"]) == 100
  for name in ("robustness.md", "reliability.png", "occlusion.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0
  assert os.listdir(os.path.join(out, "tensorboard"))
  assert "| clean top-1 (%) |" in capsys.readouterr().out


@pytest.mark.parametrize(
  "args, message",
  [(["--head", "ema/one"], "not a head of this run \\(erm\\). Valid choices: online/one"),
   (["--suite", "adversarial"], "Valid choices: calibration, fgsm, occlusion, corruption, pgd"),
   (["--suite", "pgd", "--pgd_steps", "0"], "--pgd_steps 0 must be at least 1"),
   (["--suite", "corruption", "--corruption_dir", "/nonexistent"], "--corruption_dir /nonexistent does not exist"),
   (["--corruption_baseline", "/nonexistent"], "evaluate the baseline run first"),
   (["--fgsm_space", "logits"], "Valid choices: pixel, normalized")],
)  # fmt: skip
def test_bad_requests_are_one_line_errors(trained, capsys, args, message):
  assert evaluate.main(["--workdir", trained[0], *args]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
  assert re.search(message, err)


def test_a_workdir_without_checkpoint_says_so(tmp_path, capsys):
  assert evaluate.main(["--workdir", str(tmp_path)]) == 1
  assert "holds no checkpoint: train first" in capsys.readouterr().err


def test_the_corruption_suite_released_and_generated_and_the_mce(trained, tmp_path, capsys):
  workdir, summary = trained
  run = load_run(workdir)
  config, info = run.config, run.info
  images, labels = data.InputPipeline(config, info).first_eval_examples(info.num_eval)
  # A set in the released layout whose every severity is the clean test split: each top-1 is the clean one.
  np.save(tmp_path / "labels.npy", np.tile(labels, 5))
  np.save(tmp_path / "snow.npy", np.tile(images, (5, 1, 1, 1)))  # Snow is never generated.
  assert evaluate.main(["--workdir", workdir, "--suite", "corruption", "--corruption_dir", str(tmp_path)]) == 0
  with open(os.path.join(workdir, "robustness", "robustness.json")) as f:
    released = json.load(f)["corruption"]
  clean = summary["last_eval"]["metrics"]["online/one/top1"]
  assert released["top1"] == {"snow": pytest.approx([clean] * 5)} and released["mean_top1"] == pytest.approx(clean)
  assert str(tmp_path) in released["set"]
  # The generated set (the embedded dataset has no released one), with the run itself as the mCE baseline.
  assert evaluate.main(["--workdir", workdir, "--suite", "corruption", "--corruption_baseline", workdir]) == 1
  assert "shares no corruption" in capsys.readouterr().err  # The baseline report holds only "snow".
  assert evaluate.main(["--workdir", workdir, "--suite", "corruption"]) == 0
  assert evaluate.main(["--workdir", workdir, "--suite", "corruption", "--corruption_baseline", workdir]) == 0
  with open(os.path.join(workdir, "robustness", "robustness.json")) as f:
    generated = json.load(f)["corruption"]
  assert "generated" in generated["set"] and len(generated["top1"]) == 12
  assert generated["mce"]["mce"] == pytest.approx(100.0)  # Against itself.
  assert os.path.getsize(os.path.join(workdir, "robustness", "corruption.png")) > 0
  assert "| corruption mean top-1 (%, 12 x 5) |" in capsys.readouterr().out


def test_the_mce_against_hand_computed_errors():
  report = {"top1": {"fog": [90, 80, 70, 60, 50], "contrast": [100, 100, 100, 100, 90]}}
  baseline = {"top1": {"fog": [80, 60, 40, 20, 0], "contrast": [90] * 5, "snow": [0] * 5}, "set": "b"}
  mce = robustness.mean_corruption_error(report, baseline)
  assert mce["ce"] == pytest.approx({"fog": 100 * 150 / 300, "contrast": 100 * 10 / 50})
  assert mce["mce"] == pytest.approx((50 + 20) / 2)
