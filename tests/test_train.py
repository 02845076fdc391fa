"""The training loop end to end (in process): outputs, resume, checkpoint retention, non-finite loss."""

import json
import math
import os
import re
import statistics

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from helpers import tiny_config

from adamix_jax import train


def _records(workdir, kind):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [line for line in map(json.loads, f) if line["kind"] == kind]


def _checkpoint_steps(workdir):
  return sorted(int(name) for name in os.listdir(os.path.join(workdir, "checkpoints")) if name.isdigit())


def test_run_writes_metrics_checkpoints_summary_and_resumes(tfds_dir, tmp_path):
  workdir = str(tmp_path)
  summary = train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2), workdir)
  assert summary["steps"] == 20  # 200 examples / batch 20, 2 epochs.
  evals = _records(workdir, "eval")
  assert [record["step"] for record in evals] == [10, 20]
  # ERM has no EMA network unless config.ema.track asks for one: only the online network is evaluated.
  assert set(evals[0]["metrics"]) == {"online/one/top1", "online/one/top5", "reported_top1"}
  assert all(0 <= value <= 100 for value in evals[-1]["metrics"].values())
  assert len(_records(workdir, "train")) == 20 and "loss" in _records(workdir, "train")[0]["metrics"]
  assert summary["reported_top1"] == pytest.approx(statistics.median(r["metrics"]["online/one/top1"] for r in evals))
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  with open(os.path.join(workdir, "summary.json")) as f:
    assert json.load(f)["reported_top1"] == summary["reported_top1"]

  # Asking for more epochs, on purpose, continues from step 20 with the evaluation history of the first run.
  summary = train.train_and_evaluate(
    tiny_config(tfds_dir, num_epochs=3, **{"resume.accept_changes": "num_epochs"}), workdir
  )
  assert summary["steps"] == 30
  evals = _records(workdir, "eval")
  assert [record["step"] for record in evals] == [10, 20, 30]
  assert summary["reported_top1"] == pytest.approx(
    statistics.median(r["metrics"]["online/one/top1"] for r in evals[1:])
  )


def test_keeps_the_latest_checkpoints_and_the_best(tfds_dir, tmp_path):
  workdir = str(tmp_path)
  config = tiny_config(tfds_dir, num_epochs=4, **{"checkpoint.keep": 1, "optimizer.lr": 0.4})
  train.train_and_evaluate(config, workdir)
  evals = _records(workdir, "eval")
  best = max(evals, key=lambda r: (r["metrics"]["online/one/top1"], r["step"]))["step"]
  assert _checkpoint_steps(workdir) == sorted({40, best})


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tfds_dir, tmp_path):
  workdir = str(tmp_path)
  config = tiny_config(tfds_dir, **{"optimizer.lr": 1e30, "checkpoint.every_steps": 1})
  with pytest.raises(train.NonFiniteLossError, match=r"at step \d+") as error:
    train.train_and_evaluate(config, workdir)
  failed_step = int(re.search(r"at step (\d+)", str(error.value)).group(1))
  steps = _checkpoint_steps(workdir)
  assert steps and max(steps) < failed_step
  assert f"The last checkpoint written before it is step {max(steps)}" in str(error.value)
  assert "may already have been diverging" in str(error.value)  # Finite is not called good.
  restored = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(max(steps)), "state"))
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored["params"]))
  assert math.isfinite(_records(workdir, "train")[-1]["metrics"]["loss"])


def test_divergence_before_any_checkpoint_says_there_is_none(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, **{"optimizer.lr": 1e30})
  with pytest.raises(train.NonFiniteLossError, match="No checkpoint was written before it"):
    train.train_and_evaluate(config, str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["erm", "adautomix"])
def test_training_and_evaluation_steps_compile_once(tfds_dir, tmp_path, monkeypatch, method):
  compiled = {}
  for name in ("make_train_step", "make_eval_step"):
    original = getattr(train.steps, name)

    def capture(*args, _name=name, _original=original, **kwargs):
      compiled[_name] = _original(*args, **kwargs)
      return compiled[_name]

    monkeypatch.setattr(train.steps, name, capture)
  # 2 epochs of 10 steps and 3 evaluations of batches 40, 40, 20 + padding: no retracing anywhere.
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2, method=method), str(tmp_path))
  assert compiled["make_train_step"]._cache_size() == 1
  assert compiled["make_eval_step"]._cache_size() == 1
