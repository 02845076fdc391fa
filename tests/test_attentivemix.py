"""AttentiveMix+ against the reference itself (OpenMixup's `attentivemix` run with PyTorch:
tests/golden/make_attentivemix.py made tests/golden/attentivemix.npz), and the method with its frozen network
from torchvision weights or from a run of ours."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config, tiny_run, torchvision_state

from adamix_jax import attentivemix, mixing, sharding, train
from adamix_jax.config import ConfigError
from adamix_jax.experiment import load_run
from adamix_jax.methods.attentivemix import FROZEN
from adamix_jax.validation import validate

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "attentivemix.npz"))
CASES = sorted({key.split("_")[0] for key in GOLDEN.files})


@pytest.mark.parametrize("name", CASES)
def test_masks_mixed_images_and_lam_equal_the_reference(name):
  case = {key.split("_", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + "_")}
  lam, top_k, reference_lam = case["settings"]
  images = jnp.asarray(case["images"].transpose(0, 2, 3, 1), jnp.float32)
  plan = mixing.MixPlan(jnp.asarray(case["perm"]), jnp.float32(lam), jax.random.key(0))
  features = jnp.asarray(case["features"].transpose(0, 2, 3, 1))
  mixed = attentivemix.mix(images, jnp.arange(len(plan.permutation)), features, plan, max(int(top_k), 0))
  np.testing.assert_array_equal(mixed.images, case["mixed"].transpose(0, 2, 3, 1))
  np.testing.assert_allclose(mixed.lams[0], reference_lam, rtol=1e-7)
  np.testing.assert_array_equal(mixed.labels[1], case["perm"])


def test_the_golden_cases_cover_uneven_cells_a_fixed_count_and_both_ends_of_lam():
  sides = {(GOLDEN[f"{name}_images"].shape[-1], GOLDEN[f"{name}_features"].shape[-1]) for name in CASES}
  assert (32, 7) in sides and (28, 7) in sides and (32, 4) in sides
  settings = np.stack([GOLDEN[f"{name}_settings"] for name in CASES])
  assert (settings[:, 1] > 0).any() and settings[:, 0].min() < 0.05 and settings[:, 0].max() > 0.95


def test_kept_cells_follow_lam_between_one_and_all():
  counts = [int(attentivemix.kept_cells(jnp.float32(lam), 49)) for lam in (0.0, 0.01, 0.5, 0.999, 1.0)]
  assert counts == [1, 1, 24, 48, 49]
  assert int(attentivemix.kept_cells(jnp.float32(0.9), 49, top_k=6)) == 6
  mask = attentivemix.upsample_nearest(jnp.eye(7)[None], 32, 32)[0]
  assert [int(mask[:, column].sum()) for column in (0, 5, 10)] == [5, 5, 4]  # Cells of 5, then 4 or 5 pixels.


@pytest.fixture(scope="module")
def resnet18_npz(tmp_path_factory):
  """Random torchvision ResNet-18 weights (published width: what attentivemix.backbone names)."""
  path = tmp_path_factory.mktemp("weights") / "resnet18.npz"
  np.savez(path, **torchvision_state(np.random.default_rng(0), False, (2, 2, 2, 2), 64, 1, 64))
  return str(path)


def test_a_step_reads_the_torchvision_network_and_never_changes_it(tfds_dir, resnet18_npz):
  config = tiny_config(
    tfds_dir, method="attentivemix", batch_size=8,
    **{"attentivemix.pretrained": resnet18_npz, "attentivemix.input_size": 64, "mixup.alpha": 2.0},
  )  # fmt: skip
  mesh, experiment, state, train_step = tiny_run(config)
  frozen = jax.device_get(state.batch_stats[FROZEN])
  with np.load(resnet18_npz) as weights:
    np.testing.assert_array_equal(
      frozen["params"]["stage2_block1"]["shortcut_conv"]["kernel"],
      weights["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(frozen["batch_stats"]["stem_bn"]["var"], weights["bn1.running_var"])
  method, nets = experiment.method, experiment.nets
  images = jax.random.normal(jax.random.key(0), (8, 28, 28, 1))
  features = method.features(nets, state.batch_stats[FROZEN], images)
  assert features.shape == (8, 2, 2, 512)  # 64-pixel inputs: a 2x2 attention grid.
  mixed = method.mix(images, jnp.arange(8), jax.random.key(1), features)
  assert set(np.unique(np.asarray(mixed.masks))) <= {0.0, 1.0} and mixed.masks.shape == (8, 28, 28, 1)

  batch = {"images": np.zeros((8, 28, 28, 1), np.uint8), "labels": np.arange(8, dtype=np.int32)}
  before = jax.device_get(state.params)
  state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert np.isfinite(float(metrics["loss"]))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.batch_stats[FROZEN]), frozen)
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), before, jax.device_get(state.params))))


@pytest.mark.slow
def test_a_run_of_ours_can_be_the_attending_network(tfds_dir, tmp_path):
  erm = tiny_config(tfds_dir, num_epochs=1)
  train.train_and_evaluate(erm, str(tmp_path / "erm"))
  config = tiny_config(
    tfds_dir, method="attentivemix", **{"attentivemix.pretrained": str(tmp_path / "erm"), "attentivemix.input_size": 0}
  )
  _, experiment, state, _ = tiny_run(config)
  assert experiment.nets.frozen.width == 4  # The run's backbone, not the .npz's resnet18.
  summary = train.train_and_evaluate(config, str(tmp_path / "attentivemix"))
  assert summary["steps"] == 20 and 0 <= summary["reported_top1"] <= 100
  # The checkpoint holds the attending network: a resumed run goes on with it, whatever the source holds.
  saved = load_run(str(tmp_path / "attentivemix")).state.batch_stats[FROZEN]
  source = load_run(str(tmp_path / "erm")).state
  jax.tree.map(np.testing.assert_array_equal, saved["params"], source.params["classifier"]["backbone"])


@pytest.mark.parametrize(
  ("changes", "message"),
  [
    ({}, "config.attentivemix.pretrained = '' must name the network whose attention picks the cells"),
    ({"attentivemix.pretrained": "/nowhere/resnet18.npz"}, "an .npz of torchvision ResNet weights"),
    ({"attentivemix.backbone": "vgg16"}, "Valid choices: resnet18, resnet34, resnet50, resnext50_32x4d"),
  ],
)
def test_a_missing_network_is_refused_in_one_line(tfds_dir, resnet18_npz, changes, message):
  changes = {"attentivemix.pretrained": resnet18_npz, **changes} if "attentivemix.backbone" in changes else changes
  config = tiny_config(tfds_dir, method="attentivemix", **changes)
  with pytest.raises(ConfigError, match=message.replace(".", "\\.").replace("(", "\\(")):
    validate(config, num_devices=1)
