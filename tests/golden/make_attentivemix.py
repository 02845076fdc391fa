"""Makes attentivemix.npz: OpenMixup's `attentivemix` (openmixup/models/augments/attentivemix.py at commit 37e1372,
run unmodified with PyTorch on CPU) on given attention features: the mask of each image's most attended cells,
the mixed images and the label weight.

    pip install torch numpy
    python tests/golden/make_attentivemix.py PATH/TO/attentivemix.py tests/golden/attentivemix.npz

`.cuda()` is made a no-op (the reference moves its tensors to the GPU); the partner permutation the reference
draws with `torch.randperm` is recorded by wrapping it.
"""

import importlib.util
import sys

import numpy as np
import torch

torch.Tensor.cuda = lambda self, *args, **kwargs: self  # The reference calls .cuda(); run it on CPU.

spec = importlib.util.spec_from_file_location("official_attentivemix", sys.argv[1])
official = importlib.util.module_from_spec(spec)
spec.loader.exec_module(official)

drawn = []
randperm = torch.randperm


def recording_randperm(n, *args, **kwargs):
  drawn.append(randperm(n, *args, **kwargs))
  return drawn[-1]


official.torch.randperm = recording_randperm
cases = {}
# (seed, batch, image side, attention side, channels, lam, top_k): a ResNet's 7x7 stage 4 on 32- and 28-pixel
# images (cells of 4 or 5 pixels: the reference's nearest upsampling by 32 / 7), a 4x4 one, a fixed top_k
# (the original Attentive CutMix) and lam at both ends.
settings = [
  (0, 6, 32, 7, 16, 0.37, None),
  (1, 5, 28, 7, 8, 0.62, None),
  (2, 4, 32, 4, 8, 0.5, None),
  (3, 6, 32, 7, 8, 0.5, 6),
  (4, 4, 28, 4, 8, 0.01, None),
  (5, 4, 32, 7, 8, 0.999, None),
]
for seed, batch, side, att_side, channels, lam, top_k in settings:
  torch.manual_seed(seed)
  images = torch.randint(0, 8, (batch, 3, side, side)).float()  # Small integers: the file compresses.
  features = torch.relu(torch.randn(batch, channels, att_side, att_side))
  labels = torch.arange(batch)
  drawn.clear()
  mixed, (_, _, mixed_lam) = official.attentivemix(images, labels, lam=lam, features=features, top_k=top_k)
  case = f"case{seed}"
  as_bytes = lambda x: x.numpy().astype(np.uint8)
  cases.update({f"{case}_images": as_bytes(images), f"{case}_features": features.numpy().astype(np.float32)})
  cases.update({f"{case}_perm": drawn[0].numpy(), f"{case}_mixed": as_bytes(mixed)})
  cases[f"{case}_settings"] = np.array([lam, -1 if top_k is None else top_k, mixed_lam], np.float64)
np.savez_compressed(sys.argv[2], **cases)
print(f"{len(settings)} cases written to {sys.argv[2]}")
