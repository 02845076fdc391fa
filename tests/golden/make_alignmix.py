"""Makes alignmix.npz: OpenMixup's AlignMix (openmixup/models/augments/alignmix.py at commit 37e1372, run
unmodified with PyTorch on CPU) on small feature maps: its Sinkhorn plan (and how many iterations it ran) and
both aligned mixtures.

    pip install torch numpy
    python tests/golden/make_alignmix.py PATH/TO/alignmix.py tests/golden/alignmix.npz

`.cuda()` is made a no-op (the reference moves its tensors to the GPU) and the module's coin for the
direction of the alignment (`random.randint(0, 1)`) is fixed per case, to record both directions; the
iterations are counted by wrapping the module's `_M`, which still computes.
"""

import importlib.util
import sys

import numpy as np
import torch

torch.Tensor.cuda = lambda self, *args, **kwargs: self  # The reference calls .cuda(); run it on CPU.

spec = importlib.util.spec_from_file_location("official_alignmix", sys.argv[1])
official = importlib.util.module_from_spec(spec)
spec.loader.exec_module(official)

calls = []  # The reference's cost matrix is scaled twice per iteration and once for the final plan.
scaled = official.SinkhornDistance._M


def counting_scaled(self, C, u, v):
  calls.append(1)
  return scaled(self, C, u, v)


official.SinkhornDistance._M = counting_scaled
cases = {}
# (seed, batch, channels, side, scale, eps, max_iter): post-ReLU maps of a few scales (a scale sets how many
# Sinkhorn iterations run before the reference's tolerance stops them), the 4x4 of a CIFAR ResNet-18 and the
# 7x7 of Swin-T at 224.
settings = [
  (0, 4, 32, 4, 1.0, 0.1, 100),
  (1, 6, 16, 4, 0.3, 0.1, 100),
  (2, 3, 8, 7, 0.5, 0.1, 100),
  (3, 4, 24, 2, 2.0, 0.1, 100),
  (4, 5, 16, 4, 0.05, 0.1, 100),
  (5, 4, 32, 4, 1.0, 0.2, 20),  # Stopped by max_iter.
]
for seed, batch, channels, side, scale, eps, max_iter in settings:
  torch.manual_seed(seed)
  feat1 = torch.relu(torch.randn(batch, channels, side, side)) * scale
  feat2 = torch.relu(torch.randn(batch, channels, side, side)) * scale
  lam = float(np.random.default_rng(seed).beta(2, 2))
  sinkhorn = official.SinkhornDistance(eps=eps, max_iter=max_iter)
  calls.clear()
  plan = sinkhorn(feat1.flatten(2).permute(0, 2, 1), feat2.flatten(2).permute(0, 2, 1))
  cases[f"case{seed}_iterations"] = np.array((len(calls) - 1) // 2)
  case = f"case{seed}"
  cases.update({f"{case}_feat1": feat1.numpy(), f"{case}_feat2": feat2.numpy(), f"{case}_plan": plan.numpy()})
  cases[f"{case}_settings"] = np.array([lam, eps, max_iter], np.float64)
  for direction in (0, 1):
    official.random.randint = lambda low, high, direction=direction: direction
    mixed = official.mixup_aligned(feat1, feat2, lam, eps=eps, max_iter=max_iter)
    cases[f"{case}_mixed{direction}"] = mixed.numpy()
np.savez_compressed(sys.argv[2], **cases)
print(f"{len(settings)} cases written to {sys.argv[2]}")
