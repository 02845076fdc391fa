"""The generators reproduce the official modules' golden outputs (tests/golden/README.md)."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import generators

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
RTOL, ATOL = 1e-5, 1e-6


def dense(weight, bias):
  """A PyTorch 1x1 conv weight [out, in, 1, 1] and bias as a Dense layer's parameters."""
  return {"kernel": jnp.asarray(weight[:, :, 0, 0].T), "bias": jnp.asarray(bias)}


def nchw_to_nhwc(x):
  return np.moveaxis(x, -3, -1).astype(np.float32)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(GOLDEN, "adaptivemask_*.npz"))))
def test_adaptive_mask_reproduces_golden(path):
  golden = np.load(path)
  num = golden["feats"].shape[0]
  lams = np.array([golden["lam"][0], 1 - golden["lam"][0]]) if num == 2 else golden["lam"]
  name = os.path.basename(path)
  generator = generators.AdaptiveMask(
    in_channels=8, lam_concat="_cat_" in name, upsample_mode="nearest" if "nearest" in name else "bilinear"
  )
  params = {
    "conv_q": {"conv": dense(golden["w.conv_q.conv.weight"], golden["w.conv_q.conv.bias"])},
    "conv_k": {"conv": dense(golden["w.conv_k.conv.weight"], golden["w.conv_k.conv.bias"])},
    "conv_v": dense(golden["w.conv_v.weight"], golden["w.conv_v.bias"]),
  }
  logits, masks = generator.apply({"params": params}, nchw_to_nhwc(golden["feats"]), jnp.asarray(lams, jnp.float32))
  np.testing.assert_allclose(logits, nchw_to_nhwc(golden["mask_logits_lowres"]), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(masks, nchw_to_nhwc(golden["mask"]), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(masks.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(GOLDEN, "pixelmixblock_*.npz"))))
def test_mix_block_reproduces_golden_masks_and_mask_loss(path):
  golden = np.load(path)
  generator = generators.MixBlock(in_channels=8, lam_concat="_cat" in os.path.basename(path))
  params = {
    "query": dense(golden["w.query.conv.weight"], golden["w.query.conv.bias"]),
    "value": dense(golden["w.value.weight"], golden["w.value.bias"]),
  }
  features = nchw_to_nhwc(golden["feat"])
  masks = generator.apply(
    {"params": params}, np.stack([features, features[golden["index"]]]), jnp.float32(golden["lam"])
  )
  np.testing.assert_allclose(masks, nchw_to_nhwc(golden["mask"]), rtol=RTOL, atol=ATOL)
  loss = generators.mask_loss(masks, golden["lam"])
  np.testing.assert_allclose(loss, golden["mask_loss_L1_margin0p1"], rtol=RTOL, atol=ATOL)


def test_adaptive_mask_non_finite_fallback_and_shapes():
  features = jnp.full((3, 2, 4, 4, 8), jnp.nan)
  generator = generators.AdaptiveMask(in_channels=8)
  variables = generator.init(jax.random.key(0), jnp.zeros((3, 2, 4, 4, 8)), jnp.ones(3) / 3)
  logits, masks = generator.apply(variables, features, jnp.ones(3) / 3)
  assert masks.shape == (2, 16, 16, 3)
  np.testing.assert_allclose(logits, 0.3)  # N >= 3: NaN logits become 0.3, as the original.
  np.testing.assert_allclose(masks, 1 / 3, rtol=1e-6)
