"""Mixing operators: the defining property of each, on random batches and with injected plans."""

import jax
import jax.numpy as jnp
import numpy as np
import official_mixups
import pytest

from adamix_jax import mixing

IMAGES = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
LABELS = jnp.arange(8) % 5


def _plan(lam, seed=1):
  return mixing.MixPlan(jax.random.permutation(jax.random.key(seed), 8), jnp.float32(lam), jax.random.key(seed + 1))


@pytest.mark.parametrize("name", sorted(mixing.OPERATORS))
@pytest.mark.parametrize("seed", range(4))
def test_label_weights_sum_to_one_and_equal_the_mask_area(name, seed):
  plan = mixing.sample_plan(jax.random.key(seed), 8, alpha=1.0)
  mixed = jax.jit(mixing.OPERATORS[name])(IMAGES, LABELS, plan)
  assert mixed.images.shape == IMAGES.shape and mixed.masks.shape == (8, 32, 32, 1)
  np.testing.assert_allclose(mixed.lams.sum(0), 1.0, atol=1e-6)
  area = mixed.masks.mean(axis=(1, 2, 3))  # SmoothMix, as OpenMixup, weights the label by the other area.
  np.testing.assert_allclose(1 - area if name == "smoothmix" else area, mixed.lams[0], atol=1e-6)
  np.testing.assert_array_equal(mixed.labels, np.stack([LABELS, LABELS[plan.permutation]]))
  # Every pixel is the mask-weighted combination of the image and its partner.
  expected = mixed.masks * IMAGES + (1 - mixed.masks) * IMAGES[plan.permutation] if name != "resizemix" else None
  if expected is not None:
    np.testing.assert_allclose(mixed.images, expected, atol=1e-5)


def test_mixup_is_linear_in_lambda():
  at = {lam: mixing.mixup(IMAGES, LABELS, _plan(lam)).images for lam in (0.0, 0.3, 1.0)}
  np.testing.assert_allclose(at[0.3], 0.3 * at[1.0] + 0.7 * at[0.0], atol=1e-6)
  np.testing.assert_allclose(at[1.0], IMAGES)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_cutmix_pastes_one_box_whose_area_is_one_minus_lambda(lam):
  mixed = mixing.cutmix(IMAGES, LABELS, _plan(lam))
  pasted = 1 - np.asarray(mixed.masks[0, :, :, 0])
  rows, cols = np.nonzero(pasted)
  if len(rows):  # A box: the pasted pixels fill their bounding rectangle.
    assert pasted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
  assert pasted.mean() == pytest.approx(float(mixed.lams[1, 0]))  # Corrected lambda = real area.
  assert float(mixed.lams[1, 0]) <= 1 - lam + 1e-6  # Clipping at the border only shrinks the box.
  centred = mixing.box_mask(32, 32, *mixing._cut_box(32, 32, jnp.float32(lam), jnp.array([16, 16])))
  side = int(32 * np.sqrt(1 - lam)) // 2 * 2
  assert float(centred.sum()) == side * side  # Unclipped: sides int(32 sqrt(1 - lam)), as OpenMixup.


def test_fmix_mask_is_binary_with_round_lambda_pixels():
  for lam in (0.2, 0.65):
    mask = mixing.fmix_mask(jax.random.key(3), jnp.float32(lam), 32, 32)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert int(mask.sum()) == round(lam * 32 * 32)


def test_resizemix_pastes_a_shrunk_partner():
  plan = _plan(0.5)
  mixed = mixing.resizemix(IMAGES, LABELS, plan, scope=(0.5, 0.5))  # tau = 0.5: a 16 x 16 box.
  inside = 1 - np.asarray(mixed.masks[0, :, :, 0])
  rows, cols = np.nonzero(inside)
  assert inside.sum() == 16 * 16 and float(mixed.lams[0, 0]) == pytest.approx(0.75)
  top, left = rows.min(), cols.min()
  partner = np.asarray(IMAGES[plan.permutation])
  np.testing.assert_allclose(mixed.images[:, top : top + 16, left : left + 16], partner[:, ::2, ::2])  # nearest x 1/2
  np.testing.assert_allclose(mixed.images[:, inside == 0], IMAGES[:, inside == 0])


def test_saliency_peaks_on_the_object_of_real_images():
  """On Fashion-MNIST (objects on black), the saliency peak falls on the object far above chance."""
  from adamix_jax.data import fashion_mnist_subset

  images = fashion_mnist_subset.load_arrays()["test_images"][:200].astype(np.float32) / 255
  saliency = np.asarray(jax.jit(jax.vmap(lambda im: mixing.spectral_residual_saliency(im[..., None])))(images))
  peaks = saliency.reshape(200, -1).argmax(-1)
  on_object = images.reshape(200, -1)[np.arange(200), peaks] > 0.1
  chance = np.mean(images > 0.1)
  assert on_object.mean() > chance + 0.15


def test_saliencymix_box_is_centred_on_the_first_partners_saliency_peak():
  plan = _plan(0.75)
  mixed = mixing.saliencymix(IMAGES, LABELS, plan)
  peak = np.unravel_index(np.argmax(mixing.spectral_residual_saliency(IMAGES[plan.permutation[0]])), (32, 32))
  rows, cols = np.nonzero(1 - np.asarray(mixed.masks[0, :, :, 0]))
  assert rows.min() <= peak[0] <= rows.max() and cols.min() <= peak[1] <= cols.max()
  assert np.all(np.asarray(mixed.masks) == np.asarray(mixed.masks[:1]))  # One box for the batch.


def test_sample_plan_draws_a_permutation_and_beta_lambda():
  lams = [float(mixing.sample_plan(jax.random.key(s), 16, alpha=0.2).lam) for s in range(200)]
  assert np.mean([lam < 0.1 or lam > 0.9 for lam in lams]) > 0.5  # Beta(0.2, 0.2) is U-shaped.
  plan = mixing.sample_plan(jax.random.key(0), 16, alpha=1.0)
  assert sorted(np.asarray(plan.permutation)) == list(range(16))


def test_mask_spatial_std_is_zero_for_constant_masks_and_sqrt_lam_one_minus_lam_for_binary_ones():
  constant = mixing.mixup(IMAGES, LABELS, _plan(0.3)).masks
  assert float(mixing.mask_spatial_std(constant)) == pytest.approx(0.0, abs=1e-6)
  boxes = mixing.cutmix(IMAGES, LABELS, _plan(0.5)).masks  # Binary, area lams[0] per image.
  lams = np.asarray(mixing.cutmix(IMAGES, LABELS, _plan(0.5)).lams[0])
  expected = np.mean(np.sqrt(lams * (1 - lams)))
  assert float(mixing.mask_spatial_std(boxes)) == pytest.approx(expected, rel=1e-5)
  two_sources = jnp.concatenate([boxes, 1 - boxes], axis=-1)  # Both sources' masks of the same boxes.
  assert float(mixing.mask_spatial_std(two_sources)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("size", [28, 32])
def test_grid_mask_is_the_references_for_random_draws(size):
  """Including cuts wider than the image, whose holes start left of it (the reference's negative slices)."""
  rng = np.random.default_rng(size)
  mask_fn = jax.jit(mixing.grid_mask, static_argnums=0)
  for _ in range(300):
    lam, holes = rng.beta(0.2, 0.2), int(rng.integers(2, 7))
    ratios = (rng.uniform(1, 1), rng.uniform(0.5, 1), rng.uniform(0.5, 2))
    corner = rng.random(2)
    expected = official_mixups.rand_grid(size, lam, holes, *ratios, *corner)
    got = mask_fn(size, lam, float(holes), *ratios, jnp.asarray(corner, jnp.float32))
    np.testing.assert_array_equal(np.asarray(got), expected, err_msg=f"{lam, holes, ratios, corner}")


@pytest.mark.parametrize("size", [28, 32])
def test_smooth_mask_is_the_references_gaussian(size):
  rng = np.random.default_rng(size)
  for _ in range(50):
    rand_w, rand_h = int(rng.integers(0, size) - size / 2), int(rng.integers(0, size) - size / 2)
    sigma = (rng.random() / 4 + 0.25) * size
    expected = official_mixups.gaussian_kernel(size, rand_h, rand_w, sigma)  # The reference's argument order.
    got = mixing.smooth_mask(size, row_shift=rand_h, col_shift=rand_w, sigma=sigma)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_gridmix_and_smoothmix_label_weights():
  plan = mixing.sample_plan(jax.random.key(5), IMAGES.shape[0], alpha=1.0)
  grid = mixing.gridmix(IMAGES, LABELS, plan)
  np.testing.assert_allclose(grid.lams[0], np.mean(grid.masks, axis=(1, 2, 3)), atol=1e-6)  # The real area.
  assert set(np.unique(np.asarray(grid.masks))) <= {0.0, 1.0}
  reference = mixing.smoothmix(IMAGES, LABELS, plan)
  area = mixing.smoothmix(IMAGES, LABELS, plan, lam_of="area")
  np.testing.assert_array_equal(reference.images, area.images)
  own_share = np.mean(area.masks, axis=(1, 2, 3))
  np.testing.assert_allclose(area.lams[0], own_share, atol=1e-6)
  np.testing.assert_allclose(reference.lams[0], 1 - own_share, atol=1e-6)  # The blob's share, as OpenMixup.


@pytest.mark.parametrize("operator", [mixing.gridmix, mixing.smoothmix])
def test_grid_and_smooth_masks_refuse_non_square_images(operator):
  wide = jnp.zeros((4, 16, 24, 3))
  with pytest.raises(ValueError, match="mixes square images .* these are 16x24"):
    operator(wide, LABELS[:4], mixing.sample_plan(jax.random.key(0), 4, alpha=1.0))
