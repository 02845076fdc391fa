"""numpy transcriptions of SAMix's pieces in OpenMixup, the oracles of tests/test_samix.py.

They follow, at commit 37e1372, `PixelMixBlock.forward` and `PixelMixBlock.mask_loss`
(openmixup/models/heads/pmix_block.py) with SAMix's CIFAR options (lam_mul=True, lam_residual=True,
lam_mul_k=k, value_neck_cfg=ConvNeck(C -> C/2 -> 1, BN, ELU, no bias), x_qk_concat=True, mask_loss_mode
"L1+Variance"), `ConvNeck.forward` (openmixup/models/necks/conv_necks.py), the mask adjustment of
`AutoMixup.pixel_mixup` (openmixup/models/classifiers/automix.py), and PyTorch's `F.interpolate` (bilinear,
align_corners=False; nearest). Layouts are the reference's: features [B, C, h, w], conv weights [out, in].
"""

import math

import numpy as np


def rescale_lam_mult(lam: float, k: float) -> float:
  k += 1
  return 1 / (k - 2 / 3) * (4 / 3 * math.pow(lam, 3) - 2 * lam**2 + k * lam)


def _conv1x1(x, weight, bias=None):
  """x [B, C, h, w], weight [out, C] -> [B, out, h, w]."""
  out = np.einsum("oc,bchw->bohw", weight, x)
  return out if bias is None else out + bias[None, :, None, None]


def _batch_norm_train(x, scale, bias, eps=1e-5):
  mean = x.mean(axis=(0, 2, 3), keepdims=True)
  var = x.var(axis=(0, 2, 3), keepdims=True)  # Biased, as BatchNorm2d normalises in training.
  return (x - mean) / np.sqrt(var + eps) * scale[None, :, None, None] + bias[None, :, None, None]


def _elu(x):
  return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _interpolate(x, scale: int, mode: str):
  """F.interpolate of x [B, 1, h, w] by an integer scale."""
  if mode == "nearest":
    return x.repeat(scale, axis=2).repeat(scale, axis=3)

  def axis_weights(size):
    src = np.maximum((np.arange(size * scale) + 0.5) / scale - 0.5, 0)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = src - low
    matrix = np.zeros((size * scale, size))
    matrix[np.arange(size * scale), low] += 1 - frac
    matrix[np.arange(size * scale), high] += frac
    return matrix

  rows, cols = axis_weights(x.shape[2]), axis_weights(x.shape[3])
  return np.einsum("ih,bchw,jw->bcij", rows, x, cols)


def pixel_mix_block(x, lam, index, weights, scale_factor, up_mode, k=0.25):
  """SAMix's Mix Block on features x [B, C, h, w] for (x, x[index]); returns the mask [B, 2, H, W].

  weights: query_w [d, 2C], query_b [d], key_w [d, 2C], key_b [d], value1_w [C/2, C], bn_scale [C/2],
  bn_bias [C/2], value2_w [1, C/2].
  """
  x = np.asarray(x, np.float64)
  n, _, h, w = x.shape
  x_lam, x_lam_ = x, x[index]
  lam_rescale = rescale_lam_mult(lam, k)
  x_lam = x_lam * (1 + lam_rescale * 1.0)
  x_lam_ = x_lam_ * (1 + (1 - lam_rescale) * 1.0)
  # step 1: the value of x_lam_ (ConvNeck: conv-BN-ELU, conv).
  hidden = _elu(_batch_norm_train(_conv1x1(x_lam_, weights["value1_w"]), weights["bn_scale"], weights["bn_bias"]))
  v_ = _conv1x1(hidden, weights["value2_w"]).reshape(n, 1, -1).transpose(0, 2, 1)  # [B, hw, 1]
  # step 2: q and k of cat(x_lam, x_lam_).
  x_lam = np.concatenate([x_lam, x_lam_], axis=1)
  x_lam_ = x_lam
  inter = weights["query_w"].shape[0]
  q_x = _conv1x1(x_lam, weights["query_w"], weights["query_b"]).reshape(n, inter, -1).transpose(0, 2, 1)
  k_x = _conv1x1(x_lam_, weights["key_w"], weights["key_b"]).reshape(n, inter, -1)
  # step 3: embedded Gaussian.
  pairwise = np.matmul(q_x, k_x) / q_x.shape[-1] ** 0.5
  pairwise = np.exp(pairwise - pairwise.max(axis=-1, keepdims=True))
  pairwise = pairwise / pairwise.sum(axis=-1, keepdims=True)
  # step 4: the mask of 1 - lam.
  mask_lam_ = np.matmul(pairwise, v_).reshape(n, 1, h, w)
  mask_lam_ = 1 / (1 + np.exp(-_interpolate(mask_lam_, scale_factor, up_mode)))
  return np.concatenate([1 - mask_lam_, mask_lam_], axis=1)


def mask_loss_l1_variance(mask, lam, margin=0.1) -> float:
  """PixelMixBlock.mask_loss, mode "L1+Variance", of a mask [B, 2, H, W]."""
  mask = np.asarray(mask, np.float64)[:, 1:2]
  n, _, h, w = mask.shape
  m_mean = mask.sum() / (n * h * w)
  return max(abs(1 - m_mean - lam) - margin, 0.0) - 2 * max(np.sum((mask - m_mean) ** 2) / (n * h * w), 0.0)


def adjust_mask(mask_bb, lam0):
  """The `mask_adjust` branch of AutoMixup.pixel_mixup on mask_bb [B, 2, H, W], with the reference's lam[0]."""
  mask_bb = np.array(mask_bb, np.float64)
  epsilon = 1e-8
  _mask = mask_bb[:, 0, :, :].clip(epsilon, 1 - epsilon)
  _mean = _mask.mean(axis=(1, 2))
  idx_larg = _mean > lam0 + epsilon
  idx_less = _mean < lam0 - epsilon
  mask_bb[idx_larg, 0] = _mask[idx_larg] * (lam0 / _mean[idx_larg].reshape(-1, 1, 1))
  mask_bb[idx_larg, 1] = 1 - mask_bb[idx_larg, 0]
  mask_bb[idx_less, 1] = (1 - _mask[idx_less]) * ((1 - lam0) / (1 - _mean[idx_less].reshape(-1, 1, 1)))
  mask_bb[idx_less, 0] = 1 - mask_bb[idx_less, 1]
  return mask_bb
