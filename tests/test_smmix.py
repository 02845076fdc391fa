"""SMMix against the reference itself (OpenMixup's `smmix` run with PyTorch: tests/golden/make_smmix.py made
tests/golden/smmix.npz), and the method on a small DeiT."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config, tiny_run

from adamix_jax import sharding, smmix

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "smmix.npz"))
CASES = sorted({key.split("_")[0] for key in GOLDEN.files})


@pytest.mark.parametrize("name", CASES)
def test_squares_and_lam_equal_the_reference(name):
  case = {key.split("_", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + "_")}
  grid, side, lam = case["settings"]
  grid, side = int(grid), int(side)
  attention = case["class_attention"][:, :, 1:].mean(axis=1).reshape(-1, grid, grid)  # As the ViT sows it.
  images = jnp.asarray(case["images"].transpose(0, 2, 3, 1), jnp.float32)
  mixed, mask = smmix.paste_squares(images, jnp.asarray(attention), side)
  np.testing.assert_array_equal(mixed, case["mixed"].transpose(0, 2, 3, 1))
  np.testing.assert_allclose(mask.mean(axis=(1, 2, 3)), lam, rtol=1e-6)
  assert side in smmix.square_sides(grid, (0.25, 0.75))


def test_the_draw_covers_every_side_and_labels_pair_mirrored_images():
  attention = jax.random.uniform(jax.random.key(0), (4, 14, 14))
  images = jax.random.normal(jax.random.key(1), (4, 28, 28, 1))
  sides = smmix.square_sides(14, (0.25, 0.75))
  assert sides == (3, 4, 5, 6, 7, 8, 9, 10)
  lams = set()
  for seed in range(40):
    result = smmix.mix(images, jnp.arange(4), attention, jax.random.key(seed), sides)
    lams.add(round(float(result.lams[0, 0]) * 196))
    np.testing.assert_array_equal(result.labels, [[0, 1, 2, 3], [3, 2, 1, 0]])
    np.testing.assert_allclose(result.masks.mean(axis=(1, 2, 3)), result.lams[0], rtol=1e-6)
  assert lams == {196 - side * side for side in sides}


def test_a_step_trains_a_small_deit(tfds_dir):
  config = tiny_config(
    tfds_dir, method="smmix", batch_size=8,
    **{"model.name": "deit_s", "model.width": 48, "data.augment": "random_resized_crop", "data.image_size": 64},
  )  # fmt: skip
  mesh, experiment, state, train_step = tiny_run(config)
  method, nets = experiment.method, experiment.nets
  images = jax.random.normal(jax.random.key(0), (8, 64, 64, 1))
  attention = method.attention(nets, state.variables(), images, jax.random.key(1))
  assert attention.shape == (8, 4, 4)
  np.testing.assert_allclose(attention.sum(axis=(1, 2)), 1.0, atol=0.2)  # Most of a softmax row (the rest: itself).
  batch = {"images": np.zeros((8, 64, 64, 1), np.uint8), "labels": np.arange(8, dtype=np.int32)}
  before = jax.device_get(state.params)
  state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert np.isfinite(float(metrics["loss"]))
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), before, jax.device_get(state.params))))
