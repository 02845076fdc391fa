"""Semi-supervised training: the labeled subset, the two input streams, the loss terms, FixMatch and DMixMatch."""

import functools
import json
import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from adamix_jax import config as config_lib
from adamix_jax import data, losses, schedules, sharding, steps, train, validation
from adamix_jax.data import labeled_subset, sources
from adamix_jax.experiment import make_experiment
from adamix_jax.methods import semisup
from adamix_jax.models import make_classifier
from adamix_jax.tools import compare
from adamix_jax.train_state import decays


def semisup_config(tfds_dir, method="fixmatch", **overrides):
  """A tiny semi-supervised run: 20 labels (2 per class) among 200 images, 4 labeled + 12 unlabeled a step."""
  settings = {
    "method": method, "semisup.num_labeled": 20, "semisup.unlabeled_ratio": 3, "batch_size": 4,
    "data.max_train_examples": 200, "num_epochs": 2, "ema.momentum": 0.9, "ema.end_momentum": 0.99,
    "checkpoint.asynchronous": False, "loss.dm.eta": 1.0 if method == "dmixmatch" else 0.0,
  }  # fmt: skip
  return tiny_config(tfds_dir, **{**settings, **overrides})


# --- The labeled subset ---


def test_balanced_subset_has_the_same_count_per_class_and_depends_only_on_the_seed():
  labels = np.repeat(np.arange(10), 50)[np.random.default_rng(0).permutation(500)]
  chosen = labeled_subset.choose_balanced(labels, 40, 10, seed=3)
  assert len(chosen) == 40 and len(set(chosen)) == 40 and (np.diff(chosen) > 0).all()
  np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=10), np.full(10, 4))
  np.testing.assert_array_equal(chosen, labeled_subset.choose_balanced(labels, 40, 10, seed=3))
  assert not np.array_equal(chosen, labeled_subset.choose_balanced(labels, 40, 10, seed=4))


@pytest.mark.parametrize(
  "num_labeled, match",
  [(501, "exceeds the 500 examples"), (45, "multiple of 10"), (60, "Class 9 has 5 training examples")],
)
def test_impossible_subsets_say_what_to_ask_for(num_labeled, match):
  labels = np.concatenate([np.repeat(np.arange(9), 55), np.full(5, 9)])
  with pytest.raises(labeled_subset.LabeledSubsetError, match=match):
    labeled_subset.choose_balanced(labels, num_labeled, 10, seed=0)


@pytest.mark.parametrize("suffix", [".json", ".txt", ".npy"])
def test_index_files_of_every_format_are_read_sorted(tmp_path, suffix):
  path = str(tmp_path / f"labels{suffix}")
  values = [7, 3, 11]
  if suffix == ".npy":
    np.save(path, np.asarray(values))
  else:
    with open(path, "w") as f:
      f.write(json.dumps(values) if suffix == ".json" else "\n".join(map(str, values)))
  np.testing.assert_array_equal(labeled_subset.read_index_file(path, 20), [3, 7, 11])


@pytest.mark.parametrize(
  "content, match",
  [("[1, 2, 2, 5]", "repeats indices \\(2\\)"), ("[1, 20, -1]", "outside the training split's \\[0, 20\\): 20, -1"),
   ("[]", "holds no index"), ('["a"]', "cannot be read as a list of integers")],
)  # fmt: skip
def test_bad_index_files_are_one_line_errors(tmp_path, content, match):
  path = tmp_path / "labels.json"
  path.write_text(content)
  with pytest.raises(labeled_subset.LabeledSubsetError, match=match):
    labeled_subset.read_index_file(str(path), 20)


def test_the_workdir_keeps_the_labels_and_refuses_another_set(tfds_dir, tmp_path):
  config = semisup_config(tfds_dir)
  labels = sources.train_labels(config)
  assert len(labels) == 200
  first = labeled_subset.resolve(config, labels, 10, str(tmp_path))
  labeled_subset.save(str(tmp_path), first, labels, "balanced, seed 0")
  saved = json.loads((tmp_path / labeled_subset.FILENAME).read_text())
  assert saved["indices"] == first.tolist() and saved["per_class"] == [2] * 10
  np.testing.assert_array_equal(labeled_subset.resolve(config, labels, 10, str(tmp_path)), first)
  config.seed = 1  # Another seed would draw other labels: the run keeps its own.
  with pytest.raises(labeled_subset.LabeledSubsetError, match="holds the 20 labels this run started with"):
    labeled_subset.resolve(config, labels, 10, str(tmp_path))


# --- Configuration mistakes, before anything is built ---


@pytest.mark.parametrize(
  "overrides, match",
  [({"semisup.num_labeled": 0}, "learns from a labeled subset"),
   ({"semisup.num_labeled": 0, "semisup.labeled_indices": "/nonexistent.json"}, "is not a file"),
   ({"semisup.labeled_indices": "/nonexistent.json"}, "both choose the labeled set"),
   ({"semisup.threshold": 0.0}, "must lie in \\(0, 1\\]"),
   ({"method": "dmixmatch", "loss.dm.eta": 1.0, "semisup.mix_ramp": "linear"}, "Valid choices: compound, cosine"),
   ({"semisup.strong.randaugment.level": 40.0}, "semisup.strong.randaugment.level = 40.0 exceeds"),
   ({"batch_size": 6, "num_devices": 4}, "not divisible by the 4 devices")],
)  # fmt: skip
def test_semisup_config_mistakes_are_caught_by_validate(tfds_dir, overrides, match):
  config = semisup_config(tfds_dir, **overrides)
  with pytest.raises(config_lib.ConfigError, match=match):
    validation.validate(config, config.num_devices or 4)


def test_more_labels_than_the_split_is_a_one_line_error_before_compiling(tfds_dir, tmp_path):
  config = semisup_config(tfds_dir, **{"semisup.num_labeled": 300})
  with pytest.raises(data.LabeledSubsetError, match="exceeds the 200 examples"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints")


# --- The two streams ---


def _pipeline(config, labeled, **kwargs):
  info = data.data_info(config)
  return data.SubsetPipeline(config, info, labeled, info.num_train // 12, unlabeled=True, **kwargs)


def _batches(pipeline, epoch, start=0):
  return list(pipeline.train_batches(epoch, start_batch=start))


def test_streams_hold_the_labeled_subset_and_resume_on_the_same_batches(tfds_dir):
  config = semisup_config(tfds_dir)
  labels = sources.train_labels(config)
  labeled = labeled_subset.choose_balanced(labels, 20, 10, seed=0)
  pipeline = _pipeline(config, labeled)
  epoch0, epoch1 = _batches(pipeline, 0), _batches(pipeline, 1)
  assert len(epoch0) == 200 // 12
  batch = epoch0[0]
  assert batch["images"].shape == (4, 28, 28, 1) and batch["images"].dtype == np.uint8
  assert batch["weak"].shape == batch["strong"].shape == (12, 28, 28, 1)
  assert batch["unlabeled_labels"].shape == (12,)
  # Five steps use the 20 labeled images once each, one label per class twice: a permutation per round.
  first_round = np.concatenate([b["labels"] for b in epoch0[:5]])
  np.testing.assert_array_equal(np.bincount(first_round, minlength=10), np.full(10, 2))
  assert any(not np.array_equal(b["weak"], b["strong"]) for b in epoch0)
  # Resuming at step 3 of epoch 1 gives exactly the uninterrupted batches; the epochs differ.
  resumed = _batches(_pipeline(config, labeled), 1, start=3)
  for a, b in zip(epoch1[3:], resumed, strict=True):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(epoch0[0]["weak"], epoch1[0]["weak"])


def test_two_processes_read_disjoint_slices_whose_union_is_one_process_with_two_slices(tfds_dir):
  config = semisup_config(tfds_dir, **{"data.input_slices": 2})
  labeled = labeled_subset.choose_balanced(sources.train_labels(config), 20, 10, seed=0)
  whole = _batches(_pipeline(config, labeled), 0)[0]
  parts = [_batches(_pipeline(config, labeled, process_index=i, process_count=2), 0)[0] for i in range(2)]
  for key in whole:
    np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))


# --- The loss terms ---


def test_pseudo_labels_keep_only_confident_rows_and_the_term_divides_by_the_whole_batch():
  logits = jnp.log(jnp.array([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.01, 0.01, 0.98], [0.2, 0.75, 0.05]]))
  pseudo, mask, confidence = losses.pseudo_labels(logits, 0.95)
  np.testing.assert_array_equal(pseudo, [0, 0, 2, 1])
  np.testing.assert_array_equal(mask, [1, 0, 1, 0])
  np.testing.assert_allclose(confidence, [0.96, 0.5, 0.98, 0.75], rtol=1e-6)
  student = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5], [0.3, 0.3, 0.4]]))
  term = losses.cross_entropy(student, pseudo, mask)
  np.testing.assert_allclose(term, (-np.log(0.5) - np.log(0.5)) / 4, rtol=1e-6)  # Two kept rows, over 4.
  assert float(losses.cross_entropy(student, pseudo, jnp.zeros(4))) == 0.0


def test_weighted_decoupled_mixup_weights_each_row_and_divides_by_the_batch():
  logits = jax.random.normal(jax.random.key(0), (4, 6))
  labels, lams, weights = jnp.array([[0, 1, 2, 3], [4, 5, 0, 1]]), jnp.array([0.7, 0.3]), jnp.array([1.0, 0, 1, 0])
  weighted = losses.decoupled_mixup_loss(logits, labels, lams, eta=1.0, weights=weights)
  kept = losses.decoupled_mixup_loss(logits[::2], labels[:, ::2], lams, eta=1.0)
  np.testing.assert_allclose(weighted, kept * 2 / 4, rtol=1e-6)


def test_lam_is_the_dominant_share():
  lams = jax.vmap(lambda k: semisup.dominant_lam(k, 1.0))(jax.random.split(jax.random.key(0), 1000))
  assert float(lams.min()) >= 0.5 and float(lams.max()) <= 1.0 and float(lams.std()) > 0.1


def test_compound_ramp_is_the_reference_hooks_recursion():
  total = 300
  ramp = schedules.mix_ramp(total, "compound")
  value, expected = 1.0, []
  for t in range(total):  # The hook re-anneals its own value before every iteration.
    value = value * (np.cos(np.pi * t / total) + 1) / 2
    expected.append(1 - value)
  np.testing.assert_allclose([float(ramp(t)) for t in range(total)], expected, atol=1e-6)
  assert float(ramp(0)) == 0.0 and float(ramp(total - 1)) == 1.0
  cosine = schedules.mix_ramp(total, "cosine")
  np.testing.assert_allclose(float(cosine(total // 2)), 0.5, atol=1e-6)
  assert float(schedules.mix_ramp(88_800)(1_900)) == pytest.approx(0.5, abs=0.02)  # Half-way after ~2%.


def test_detached_heads_train_only_the_heads():
  classifier = make_classifier("cifar_resnet18", 5, ("one", "mix"), width=4)
  images = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  variables = jax.jit(functools.partial(classifier.init, train=False))(jax.random.key(1), images)

  @jax.jit
  def grads(detach):
    def loss(params):
      output = classifier.apply({**variables, "params": params}, images, train=False, detach_heads=detach)
      return jnp.sum(output.logits["mix"] ** 2)

    return jax.grad(loss)(variables["params"])

  for detach, backbone_moves in ((jnp.array(True), False), (jnp.array(False), True)):
    g = grads(detach)
    assert (max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g["backbone"])) > 0) == backbone_moves
    assert float(jnp.abs(g["head_mix"]["Dense_0"]["kernel"]).max()) > 0


def test_weight_decay_mask_leaves_norms_and_biases_out():
  kernel, vector = np.zeros((3, 3, 2, 4)), np.zeros(4)
  params = {
    "conv": {"kernel": kernel},
    "bn": {"scale": vector, "bias": vector},
    "head": {"Dense_0": {"kernel": kernel[0, 0], "bias": vector}},
  }
  assert decays(params) == {
    "conv": {"kernel": True},
    "bn": {"scale": False, "bias": False},
    "head": {"Dense_0": {"kernel": True, "bias": False}},
  }


# --- The methods ---


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fixmatch"])  # DMixMatch's terms: the resume test below.
def test_a_step_on_8_devices_compiles_once_and_logs_every_term(tfds_dir, method):
  config = semisup_config(tfds_dir, method, batch_size=8, num_devices=8)
  mesh = sharding.make_mesh(8)
  info = data.data_info(config)
  experiment = make_experiment(config, info, mesh)
  labeled = labeled_subset.choose_balanced(sources.train_labels(config), 20, 10, seed=0)
  pipeline = data.SubsetPipeline(config, info, labeled, experiment.steps_per_epoch, unlabeled=True)
  train_step = steps.make_train_step(
    experiment.method, experiment.nets, experiment.tx, experiment.parts.ema, info, mesh, 100
  )
  state = experiment.init()
  for batch in list(pipeline.train_batches(0))[:2]:
    state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert train_step._cache_size() == 1
  metrics = jax.device_get(metrics)
  expected = {"loss", "loss_labeled", "loss_unlabeled", "mask_rate", "pseudo_label_accuracy", "accuracy"}
  if method == "dmixmatch":
    expected |= {"loss_mix_labeled", "loss_mix_unlabeled", "mix_weight"}
  assert expected <= set(metrics) and all(np.isfinite(v) for v in metrics.values())
  assert 0 <= metrics["mask_rate"] <= 1 and 0 <= metrics["pseudo_label_accuracy"] <= 1


@pytest.mark.slow
def test_dmixmatch_leaves_the_labeled_x_unlabeled_term_out_while_its_weight_is_tiny(tfds_dir):
  config = semisup_config(tfds_dir, "dmixmatch", **{"semisup.threshold": 0.01})  # Every pseudo-label kept.
  mesh = sharding.make_mesh(1)
  info = data.data_info(config)
  experiment = make_experiment(config, info, mesh)
  labeled = labeled_subset.choose_balanced(sources.train_labels(config), 20, 10, seed=0)
  batch = next(data.SubsetPipeline(config, info, labeled, experiment.steps_per_epoch, unlabeled=True).train_batches(0))
  batch = {
    key: steps.normalize(x, info.mean, info.std) if key in steps.IMAGE_KEYS else jnp.asarray(x)
    for key, x in batch.items()
  }
  state = experiment.init()
  method = experiment.method
  weights = [float(method.ramp_weight(t)) for t in range(method.total_steps)]
  skipped = next(t for t, w in enumerate(weights) if w <= semisup.SKIP_AT_MOST)
  active = next(t for t, w in enumerate(weights) if w > semisup.DETACH_BELOW)
  loss = jax.jit(lambda state: method.loss(experiment.nets, state.params, state, batch, jax.random.key(0))[1][1])
  for step, on in ((skipped, False), (active, True)):
    metrics = loss(state.replace(step=jnp.int32(step)))
    assert (float(metrics["loss_mix_unlabeled"]) > 0) == on


@pytest.mark.slow
def test_a_resumed_run_ends_in_the_uninterrupted_runs_state(tfds_dir, tmp_path, capsys):
  overrides = {"checkpoint.every_steps": 5, "checkpoint.keep": 20, "data.max_train_examples": 120}
  config = semisup_config(tfds_dir, "dmixmatch", **overrides)
  whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
  summary = train.train_and_evaluate(config, whole)
  total = summary["steps"]
  shutil.copytree(whole, resumed)
  checkpoints = os.path.join(resumed, "checkpoints")
  for name in os.listdir(checkpoints):  # Back to the step-5 checkpoint, mid-epoch: the later ones are lost.
    if name.isdigit() and int(name) > 5:
      shutil.rmtree(os.path.join(checkpoints, name))
  os.remove(os.path.join(resumed, "summary.json"))
  assert train.train_and_evaluate(config, resumed)["steps"] == total
  with open(os.path.join(resumed, "metrics.jsonl")) as f:
    logged = [json.loads(line)["metrics"] for line in f if '"train"' in line]
  assert {"loss_mix_unlabeled", "mix_weight", "mask_rate", "kept_pseudo_label_accuracy"} <= set(logged[-1])

  def final_state(workdir):
    from adamix_jax.checkpointing import Checkpoints

    experiment = make_experiment(config, data.data_info(config), sharding.make_mesh(1))
    checkpoints = Checkpoints(workdir, read_only=True)
    try:
      return checkpoints.restore(experiment.abstract_state)[0]
    finally:
      checkpoints.close()

  chex.assert_trees_all_close(final_state(whole), final_state(resumed), rtol=1e-6, atol=1e-6)

  # The two workdirs differ only in where they ran: one group of two runs with the same number.
  plot = tmp_path / "curves.png"
  assert compare.main([whole, resumed, "--plot", str(plot)]) == 0
  reported = f"{summary['reported_top1']:.2f} ± 0.00"
  assert f"| dmixmatch | ema/one | {reported} | 2 | 2 | {total} |" in capsys.readouterr().out and plot.exists()
