"""Corruption sets (adamix_jax.corruptions): the released layouts' readers and the generated corruptions."""

import os

import matplotlib.colors
import ml_collections
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from adamix_jax import corruptions
from adamix_jax.data import DataInfo

RNG = np.random.default_rng(0)
IMAGES = (RNG.random((6, 32, 32, 3)) * 255).astype(np.uint8)


def _write_npy_layout(directory, n=4, shape=(8, 8, 3), names=("fog", "contrast")):
  os.makedirs(directory, exist_ok=True)
  labels = np.tile(np.arange(n), 5).astype(np.uint8)
  np.save(os.path.join(directory, "labels.npy"), labels)
  for k, name in enumerate(names):
    images = np.zeros((5 * n, *shape), np.uint8)
    images[:] = (10 * k + np.arange(5 * n))[:, None, None, None]  # Pixel value = 10 k + row.
    np.save(os.path.join(directory, f"{name}.npy"), images)
  return labels


def test_the_npy_layout_reads_each_severity_and_each_process_share(tmp_path):
  _write_npy_layout(tmp_path)
  released = corruptions.read_npy_layout(str(tmp_path), (8, 8, 3))
  assert released.names == ("fog", "contrast") and released.size == 4  # In the released order.
  images, labels = released.load("contrast", 3)
  np.testing.assert_array_equal(images[:, 0, 0, 0], 10 + np.arange(8, 12))  # Rows 2n .. 3n - 1.
  np.testing.assert_array_equal(labels, np.arange(4))
  share, share_labels = released.load("fog", 2, (1, 2))  # Process 1 of 2: rows n + 1, n + 3.
  np.testing.assert_array_equal(share[:, 0, 0, 0], [5, 7])
  np.testing.assert_array_equal(share_labels, [1, 3])


@pytest.mark.parametrize(
  "damage, message",
  [("no_labels", "has no labels.npy: expected the released layout"),
   ("no_files", "holds none of the corruption files"),
   ("bad_labels", "not 5 x n labels")],
)  # fmt: skip
def test_a_malformed_npy_directory_says_what_is_expected(tmp_path, damage, message):
  _write_npy_layout(tmp_path)
  if damage == "no_labels":
    os.remove(tmp_path / "labels.npy")
  elif damage == "no_files":
    for name in ("fog", "contrast"):
      os.remove(tmp_path / f"{name}.npy")
  else:
    np.save(tmp_path / "labels.npy", np.arange(7))
  with pytest.raises(corruptions.CorruptionError, match=message):
    corruptions.read_npy_layout(str(tmp_path), (8, 8, 3))


def test_images_of_another_size_are_refused(tmp_path):
  _write_npy_layout(tmp_path, shape=(8, 8, 3))
  released = corruptions.read_npy_layout(str(tmp_path), (32, 32, 3))
  with pytest.raises(corruptions.CorruptionError, match=r"expected uint8 \(20, 32, 32, 3\)"):
    released.load("fog", 1)


def test_the_folder_layout_labels_images_by_the_runs_classes(tmp_path):
  classes = ("n01", "n02")
  for severity in corruptions.SEVERITIES:
    for label, wnid in enumerate(classes):
      folder = tmp_path / "zoom_blur" / str(severity) / wnid
      os.makedirs(folder)
      for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 50 * label + i, np.uint8)).save(folder / f"{i}.png")
  released = corruptions.read_folder_layout(str(tmp_path), classes, (8, 8, 3))
  assert released.names == ("zoom_blur",) and released.size == 4
  images, labels = released.load("zoom_blur", 5)
  np.testing.assert_array_equal(labels, [0, 0, 1, 1])
  np.testing.assert_array_equal(sorted(images[:, 0, 0, 0]), [0, 1, 50, 51])
  np.testing.assert_array_equal(images[:, 0, 0, 0] // 50, labels)  # Each image with its class's label.
  os.rename(tmp_path / "zoom_blur" / "4", tmp_path / "zoom_blur" / "four")
  with pytest.raises(corruptions.CorruptionError, match="zoom_blur, severity 4"):
    released.load("zoom_blur", 4)
  with pytest.raises(corruptions.CorruptionError, match="none of the corruption directories"):
    corruptions.read_folder_layout(str(tmp_path / "zoom_blur"), classes, (8, 8, 3))


def test_which_set_a_run_is_evaluated_on(tmp_path):
  config = ml_collections.ConfigDict({"data": {"name": "cifar100"}, "seed": 0})
  info = DataInfo(100, (32, 32, 3), 10, 10, (0.5,) * 3, (0.25,) * 3)
  with pytest.raises(corruptions.CorruptionError, match="CIFAR-100-C: download it .* --corruption_dir"):
    corruptions.open_corruptions(config, info, "", None)
  with pytest.raises(corruptions.CorruptionError, match="does not exist"):
    corruptions.open_corruptions(config, info, str(tmp_path / "missing"), None)
  _write_npy_layout(tmp_path, shape=(32, 32, 3))
  assert corruptions.open_corruptions(config, info, str(tmp_path), None).names == ("fog", "contrast")
  config.data.name = "fashion_mnist_subset"
  generated = corruptions.open_corruptions(config, info, "", (IMAGES[..., :1], np.arange(6)))
  assert "generated" in generated.description and "saturate" not in generated.names  # Grey images.
  assert len(generated.names) == 12


def test_the_filters_equal_the_references_the_released_sets_were_made_with():
  x = RNG.random((2, 12, 12, 3))
  for sigma in (0.4, 1.0):  # skimage.filters.gaussian = scipy's, 'nearest' borders, truncate 4.
    expected = scipy.ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)
    np.testing.assert_allclose(corruptions.gaussian_filter(x, sigma), expected, atol=1e-12)
  for factor in (1.05, 1.2):  # scipy.ndimage.zoom(order=1) of the centre crop, trimmed back.
    crop = int(np.ceil(12 / factor))
    top = (12 - crop) // 2
    zoomed = scipy.ndimage.zoom(x[0, top : top + crop, top : top + crop], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - 12) // 2
    np.testing.assert_allclose(
      corruptions.clipped_zoom(x, factor)[0], zoomed[trim : trim + 12, trim : trim + 12], atol=1e-12
    )
  np.testing.assert_allclose(corruptions.rgb_to_hsv(x), matplotlib.colors.rgb_to_hsv(x), atol=1e-12)
  np.testing.assert_allclose(corruptions.hsv_to_rgb(corruptions.rgb_to_hsv(x)), x, atol=1e-12)
  kernel = corruptions.disk_kernel(1.5, 0.1)
  assert kernel.shape == (17, 17) and kernel.sum() == pytest.approx(1.0)
  np.testing.assert_allclose(kernel, kernel.T) and np.testing.assert_allclose(kernel, kernel[::-1])


@pytest.mark.parametrize("name", sorted(corruptions.GENERATED))
def test_every_generated_corruption_is_deterministic_and_grows_with_severity(name):
  generated = corruptions.generate(IMAGES, np.arange(6), seed=3)
  again = corruptions.generate(IMAGES, np.arange(6), seed=3)
  changes = []
  for severity in corruptions.SEVERITIES:
    images, labels = generated.load(name, severity)
    assert images.dtype == np.uint8 and images.shape == IMAGES.shape
    np.testing.assert_array_equal(images, again.load(name, severity)[0])
    changes.append(np.abs(images.astype(float) - IMAGES).mean())
  assert changes[-1] > changes[0] > 0 or name == "saturate"  # Saturate's severity 3-5 raise, 1-2 lower.
  first, second = generated.load(name, 5, (0, 2)), generated.load(name, 5, (1, 2))
  np.testing.assert_array_equal(np.concatenate([first[1], second[1]]), [0, 2, 4, 1, 3, 5])


def test_noise_and_contrast_follow_their_definitions():
  flat = np.full((64, 16, 16, 1), 128, np.uint8)
  noisy = corruptions.corrupt(flat, "gaussian_noise", 5, np.random.default_rng(0)).astype(float) / 255
  assert noisy.std() == pytest.approx(0.10, rel=0.05)  # Severity 5: sigma 0.10 of the [0, 1] image.
  impulse = corruptions.corrupt(flat, "impulse_noise", 5, np.random.default_rng(0))
  assert np.isin(impulse, [0, 128, 255]).all() and (impulse != 128).mean() == pytest.approx(0.07, abs=0.01)
  contrast = corruptions.corrupt(IMAGES, "contrast", 5, np.random.default_rng(0)).astype(float)
  assert contrast.std(axis=(1, 2)).mean() == pytest.approx(0.15 * IMAGES.std(axis=(1, 2)).mean(), rel=0.05)
