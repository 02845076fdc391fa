"""PuzzleMix's mixing against the reference itself: OpenMixup's `puzzlemix` run with PyTorch and GCO's graph cut
(tests/golden/make_puzzlemix.py made tests/golden/puzzlemix.npz), and GCO's alpha-beta swap on random grids."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import graph_cut
from adamix_jax import puzzlemix as puzzle

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "puzzlemix.npz"))
CASES = sorted({key.split(".")[0] for key in GOLDEN.files if key.startswith("case")})
SWAPS = sorted({key.split(".")[0] for key in GOLDEN.files if key.startswith("swap")})
# The statistics the reference denormalises with below 64 pixels (CIFAR-10's), whatever the dataset.
CIFAR10_MEAN, CIFAR10_STD = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2023, 0.1994, 0.2010])


def _case(name):
  return {key.split(".", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + ".")}


def test_the_golden_file_covers_every_block_count_and_both_label_counts():
  cases = [_case(name) for name in CASES]
  assert {int(c["block_num"]) for c in cases} == {2, 4, 8} and {int(c["n_labels"]) for c in cases} == {2, 3}
  assert len(SWAPS) == 36
  # The masks are not trivial: partial masks of several values.
  assert len(np.unique(np.concatenate([c["block_masks"].ravel() for c in cases]))) == 3


@pytest.mark.parametrize("name", SWAPS)
def test_swap_labelling_equals_gco(name):
  case = _case(name)
  integers = (case["label_cost"].shape[0] - 1) ** 2  # Label costs in quarters: they and the unary times 4.
  labels = graph_cut.swap_labelling(
    jnp.asarray(case["unary"] * integers),
    jnp.asarray(case["cost_v"]),
    jnp.asarray(case["cost_h"]),
    jnp.asarray(np.rint(case["label_cost"] * integers), jnp.int32),
  )
  np.testing.assert_array_equal(np.asarray(labels), case["labels"])


@pytest.mark.parametrize("name", CASES)
def test_masks_plans_and_mixed_images_equal_the_reference(name):
  case = _case(name)
  images = jnp.asarray(case["images"].transpose(0, 2, 3, 1))
  saliency, permutation = jnp.asarray(case["saliency"]), jnp.asarray(case["perm"])
  blocks, options = int(case["block_num"]), puzzle.PuzzleOptions.defaults(n_labels=int(case["n_labels"]))
  pixels = (images * CIFAR10_STD + CIFAR10_MEAN).astype(jnp.float32)

  mask = jax.jit(puzzle.block_mask, static_argnums=(4, 5))(
    saliency, pixels, permutation, jnp.float32(case["lam"]), blocks, options
  )
  np.testing.assert_array_equal(np.asarray(mask), case["block_masks"])

  unary = puzzle.unary(saliency, blocks)
  own_plan = puzzle.transport_plan(mask, unary, options.transport_eps)
  partner_plan = puzzle.transport_plan(1 - mask, unary[permutation], options.transport_eps)
  np.testing.assert_array_equal(np.asarray(own_plan), case["plan1"])
  np.testing.assert_array_equal(np.asarray(partner_plan), case["plan2"])

  size = images.shape[1] // blocks
  weight = jnp.repeat(jnp.repeat(mask, size, 1), size, 2)[..., None]
  own = puzzle.transport(images, own_plan, blocks)
  partner = puzzle.transport(images[permutation], partner_plan, blocks)
  mixed = weight * own + (1 - weight) * partner
  np.testing.assert_allclose(np.asarray(mixed).transpose(0, 3, 1, 2), case["mixed"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(weight.mean((1, 2, 3))), case["lams"], rtol=1e-6)


def test_the_swap_labelling_is_a_local_minimum_of_every_swap():
  """No single swap move lowers the energy of the result (what the algorithm guarantees), on fresh grids."""
  rng = np.random.default_rng(7)
  label_cost = jnp.array([[0, 1, 4], [1, 0, 1], [4, 1, 0]])
  for _ in range(5):
    unary = jnp.asarray(rng.integers(0, 500, (4, 4, 3)), jnp.int32)
    weight_v, weight_h = (jnp.asarray(rng.integers(0, 300, shape), jnp.int32) for shape in ((3, 4), (4, 3)))
    labels = graph_cut.swap_labelling(unary, weight_v, weight_h, label_cost)
    best = graph_cut.energy(labels, unary, weight_v, weight_h, label_cost)
    # Every labelling one node away (a special case of a swap move) costs at least as much.
    for node in range(16):
      for label in range(3):
        other = labels.reshape(-1).at[node].set(label).reshape(4, 4)
        assert graph_cut.energy(other, unary, weight_v, weight_h, label_cost) >= best


def _method(**changes):
  from adamix_jax import methods

  options = methods.PuzzleMix.Options.defaults()
  puzzle_options = dataclasses.replace(options.puzzle, **changes)
  return methods.PuzzleMix(dataclasses.replace(options, puzzle=puzzle_options))


def test_the_method_mixes_by_the_saliency_of_its_own_gradient():
  """Saliency is the RMS over channels of d loss / d input; the mix keeps each example's mask and weights."""
  from adamix_jax import models

  method = _method()
  classifier = models.make_classifier("cifar_resnet18", num_classes=10, head_names=("one",), width=4)
  images = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
  labels = jnp.arange(8) % 10
  variables = classifier.init(jax.random.key(1), images, train=False)
  saliency = method.saliency(method.make_networks(classifier, (32, 32, 3)), variables, images, labels)

  def loss(x):
    return method.cross_entropy(classifier.apply(variables, x, train=False).logits["one"], labels)

  gradient = jax.grad(loss)(images)
  np.testing.assert_allclose(saliency, jnp.sqrt(jnp.mean(gradient**2, -1)), rtol=1e-5, atol=1e-12)
  mixed = jax.jit(method.mix)(images, labels, jax.random.key(2), saliency)
  assert mixed.images.shape == images.shape and mixed.masks.shape == (8, 32, 32, 1)
  np.testing.assert_allclose(mixed.lams[0], mixed.masks.mean((1, 2, 3)), rtol=1e-6)
  np.testing.assert_allclose(mixed.lams.sum(0), 1.0, rtol=1e-6)
  assert set(np.unique(np.asarray(mixed.masks))) <= {0.0, 0.5, 1.0}
  with pytest.raises(ValueError, match="mixes by saliency"):
    method.mix(images, labels, jax.random.key(2))


@pytest.mark.parametrize(
  ("changes", "shape", "message"),
  [
    ({}, (32, 32, 1), "pixel_std = \\(\\) is the reference's colour statistics"),
    ({"pixel_std": (0.3,)}, (28, 28, 1), "blocks = \\(2, 4, 8\\) has \\[8\\], which do not divide"),
    ({"pixel_std": (0.3,), "blocks": (2, 4)}, (28, 28, 1), "neigh_size = 4 does not tile the blocks of 14"),
    ({"blocks": (3,)}, (32, 32, 3), "must be powers of two"),
    ({"blocks": (2, 16)}, (32, 32, 3), "must be powers of two from 2 to 10"),
  ],
)
def test_images_the_options_do_not_suit_are_refused_in_one_line(changes, shape, message):
  from adamix_jax import models
  from adamix_jax.config import ConfigError

  with pytest.raises(ConfigError, match=message):
    method = _method(**changes)
    method.make_networks(models.make_classifier("cifar_resnet18", 10, ("one",), width=4), shape)
