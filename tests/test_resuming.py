"""Resuming never changes a run's meaning silently: what a resumed run may change, and what it must accept."""

import json
import os

import chex
import orbax.checkpoint as ocp
import pytest
from helpers import tiny_config

from adamix_jax import data, resuming, train
from adamix_jax.config import ConfigError
from adamix_jax.data import fashion_mnist_subset
from adamix_jax.tools import compare


def _state(workdir, step):
  return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))


@pytest.mark.parametrize(
  "change",
  [{"batch_size": 10}, {"optimizer.lr": 0.05}, {"num_epochs": 3}, {"loss.dm.eta": 0.1, "method": "mixup"}],
  ids=["batch_size", "lr", "num_epochs", "dm"],
)
def test_a_change_of_what_is_trained_is_refused_with_what_differs_and_how_to_accept_it(tfds_dir, tmp_path, change):
  base = {"method": "mixup"} if "method" in change else {}
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(tfds_dir, **{"num_epochs": 1, "checkpoint.every_steps": 5, **base}), workdir)
  os.remove(os.path.join(workdir, "summary.json"))
  # Back to step 5 of 10 (the run's own checkpoint), so that there is something left to train.
  os.rename(os.path.join(workdir, "checkpoints", "10"), os.path.join(str(tmp_path), "finished"))
  with pytest.raises(ConfigError) as refused:
    train.train_and_evaluate(tiny_config(tfds_dir, **{"num_epochs": 1, **base, **change}), workdir)
  message = str(refused.value)
  key = next(k for k in change if k != "method")
  assert f"holds a run saved at step 5 that trained with other settings: {key}:" in message
  assert f"--config.resume.accept_changes={key}" in message and "\n" not in message
  assert not os.path.exists(os.path.join(workdir, resuming.CHANGES_FILE))


def test_where_and_how_a_run_runs_may_change_freely(tfds_dir, tmp_path, capsys):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), workdir)
  capsys.readouterr()
  summary = train.train_and_evaluate(
    tiny_config(tfds_dir, num_epochs=1, eval_batch_size=20, **{"log.every_steps": 2, "eval.median_of_last": 1}),
    workdir,
  )  # Finished: nothing to train, nothing refused.
  assert summary["steps"] == 10
  os.remove(os.path.join(workdir, "summary.json"))
  changes = resuming.check_changes(
    {"config": json.loads(tiny_config(tfds_dir).to_json()), "input_position": {"steps_per_epoch": 10}},
    tiny_config(tfds_dir, eval_batch_size=20, **{"checkpoint.keep": 1, "data.workers": 1}),
    10,
    5,
    workdir,
  )
  assert changes == {}
  assert "differs from the checkpoint's in how the run runs or is evaluated: checkpoint.keep: 3 -> 1" in (
    capsys.readouterr().out
  )


def test_extending_a_finished_run_on_purpose_continues_it_as_the_longer_run_and_is_recorded(tfds_dir, tmp_path, capsys):
  workdir = str(tmp_path / "extended")
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), workdir)
  with pytest.raises(ConfigError, match=r"num_epochs: 1 -> 2.*--config.resume.accept_changes=num_epochs"):
    train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2), workdir)
  extend = tiny_config(tfds_dir, num_epochs=2, **{"resume.accept_changes": "num_epochs"})
  summary = train.train_and_evaluate(extend, workdir)
  assert summary["steps"] == 20
  assert "Changed on purpose from step 10 on" in capsys.readouterr().out
  assert [(e["step"], e["changes"]) for e in resuming.read(workdir)] == [(10, {"num_epochs": [1, 2]})]
  # The steps after 10 follow the 2-epoch schedule. The per-epoch cosine gives epoch 0 the base learning rate
  # whatever the length, so here the extended run ends exactly where a 2-epoch run from the start does.
  reference = str(tmp_path / "two_epochs")
  assert train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2), reference)["last_eval"] == summary["last_eval"]
  chex.assert_trees_all_close(_state(workdir, 20), _state(reference, 20), rtol=1e-6, atol=1e-7)
  # Rerun with the same command: finished, recorded once.
  train.train_and_evaluate(extend, workdir)
  assert len(resuming.read(workdir)) == 1
  assert compare.changed_on_resume([compare.read_run(workdir)]) == (
    f"{workdir}: changed on resume at step 10: num_epochs: 1 -> 2"
  )


def test_a_training_split_of_another_size_is_a_change_of_steps_per_epoch(tmp_path):
  arrays = fashion_mnist_subset.load_arrays()
  images, labels = arrays["train_images"], arrays["train_labels"]
  test = (arrays["test_images"][:40], arrays["test_labels"][:40])
  config = tiny_config(str(tmp_path), **{"data.name": "growing", "data.max_train_examples": 0, "num_epochs": 2})
  data.register_arrays("growing", train=(images[:100], labels[:100]), test=test)
  workdir = str(tmp_path / "run")
  config.num_epochs = 1
  train.train_and_evaluate(config, workdir)
  data.register_arrays("growing", train=(images[:140], labels[:140]), test=test)  # 2 more batches per epoch
  config = tiny_config(str(tmp_path), **{"data.name": "growing", "data.max_train_examples": 0, "num_epochs": 2})
  config.resume.accept_changes = "num_epochs"
  with pytest.raises(ConfigError, match=r"steps_per_epoch: 5 -> 7.*at epoch 1 \[5/7\]"):
    train.train_and_evaluate(config, workdir)
  config.resume.accept_changes = "num_epochs,steps_per_epoch"
  assert train.train_and_evaluate(config, workdir)["steps"] == 14


def test_accept_changes_names_config_keys():
  from adamix_jax.validation import validate

  config = tiny_config("", **{"resume.accept_changes": "batch_size,optimizer.learning_rate"})
  with pytest.raises(ConfigError, match="resume.accept_changes = .* names optimizer.learning_rate, not config keys"):
    validate(config, 1)
