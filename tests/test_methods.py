"""Every static mixup trains a step with and without DM; the grids of mixed samples look right."""

import jax
import numpy as np
import pytest
from helpers import tiny_config, tiny_run

from adamix_jax import data, losses, methods, mixing, pictures, sharding
from adamix_jax.images import denormalize, normalize

STATIC = sorted(  # (AttentiveMix+ reads a network file: test_attentivemix.py trains it.)
  name
  for name, cls in methods.METHODS.items()
  if issubclass(cls, methods.StaticMixup) and cls.backbones is None and not cls.reads_network_file
)
# What a method needs on the embedded 28x28 grey images beyond the defaults.
GREY_28 = {"puzzlemix": {"puzzlemix.blocks": (2, 4), "puzzlemix.neigh_size": 7, "puzzlemix.pixel_std": (0.353,)}}


@pytest.fixture(scope="module")
def batch(tfds_dir):
  config = tiny_config(tfds_dir, batch_size=8)
  return next(data.InputPipeline(config, data.data_info(config)).train_batches(0))


@pytest.mark.parametrize("name", STATIC)
def test_each_static_mixup_trains_a_step(tfds_dir, batch, name):
  dm = STATIC.index(name) % 2 and methods.METHODS[name].accepts_dm  # Half with DM; the switch is tested below.
  eta = 0.1 if dm else 0.0
  config = tiny_config(
    tfds_dir, method=name, batch_size=8, **{"loss.dm.eta": eta, "mixup.alpha": 1.0}, **GREY_28.get(name, {})
  )
  mesh, _, state, train_step = tiny_run(config)
  before = jax.device_get(state.params)
  state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert np.isfinite(float(metrics["loss"])) and 0 <= float(metrics["accuracy"]) <= 1
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before, jax.device_get(state.params))
  assert any(jax.tree.leaves(changed))


def test_dm_and_label_smoothing_options_select_the_loss():
  """Built from their options alone: no config, no dataset."""
  logits = jax.random.normal(jax.random.key(0), (6, 10))
  labels = np.array([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
  lams = np.stack([np.full(6, 0.3), np.full(6, 0.7)])
  Options = methods.CutMix.Options
  plain = methods.CutMix(Options.defaults()).mixed_loss(logits, labels, lams)
  assert float(plain) == pytest.approx(float(losses.mixup_cross_entropy(logits, labels, lams)))
  dm_options = losses.DecoupledMixupOptions.defaults(eta=0.1, mode="less", lam_power=0.5)
  dm = methods.CutMix(Options.defaults(dm=dm_options)).mixed_loss(logits, labels, lams)
  expected = losses.decoupled_mixup_loss(logits, labels, lams, eta=0.1, mode="less", lam_power=0.5)
  assert float(dm) == pytest.approx(float(expected)) and float(dm) > float(plain)
  smooth = methods.CutMix(Options.defaults(label_smoothing=0.1)).mixed_loss(logits, labels, lams)
  assert float(smooth) == pytest.approx(float(losses.mixup_cross_entropy(logits, labels, lams, label_smoothing=0.1)))
  erm = methods.ERM(methods.ERM.Options.defaults(label_smoothing=0.1))
  expected = losses.cross_entropy(logits, labels[0], label_smoothing=0.1)
  assert float(erm.cross_entropy(logits, labels[0])) == pytest.approx(float(expected)) and float(smooth) != float(plain)


@pytest.mark.parametrize("name", sorted(mixing.OPERATORS))
def test_grid_of_mixed_samples_on_the_embedded_dataset(tfds_dir, batch, name):
  info = data.data_info(tiny_config(tfds_dir))
  images = normalize(batch["images"], info.mean, info.std)
  plan = mixing.sample_plan(jax.random.key(0), 8, alpha=1.0)
  mixed = mixing.OPERATORS[name](images, batch["labels"], plan)
  grid = pictures.mixed_sample_grid(mixed, info.mean, info.std, count=8)
  assert grid.shape == (2 * 28, 8 * 28, 3) and grid.dtype == np.uint8
  assert grid[:28].std() > 10  # Real image content.
  tiles = grid[28:, :, 0].reshape(28, 8, 28).transpose(1, 0, 2)
  own_share = np.asarray(mixed.lams[0]) if name != "smoothmix" else 1 - np.asarray(mixed.lams[0])  # (OpenMixup's)
  np.testing.assert_allclose(tiles.mean(axis=(1, 2)) / 255, own_share, atol=2e-3)
  if name not in ("mixup", "smoothmix"):  # Box and mask methods: each pixel comes from one source.
    assert set(np.unique(tiles)) <= {0, 255}
  unmixed = denormalize(images, info.mean, info.std)
  np.testing.assert_array_equal(unmixed, batch["images"])  # denormalize inverts normalize.


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_parameters_and_losses(tfds_dir, batch):
  losses_by_dtype = {}
  for dtype in ("float32", "bfloat16"):
    config = tiny_config(tfds_dir, method="adautomix", batch_size=8, **{"model.dtype": dtype})
    mesh, _, state, train_step = tiny_run(config)
    state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
    assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves((state.params, state.ema)))
    assert metrics["loss"].dtype == np.float32
    losses_by_dtype[dtype] = float(metrics["loss"])
  assert losses_by_dtype["bfloat16"] == pytest.approx(losses_by_dtype["float32"], rel=0.05)
