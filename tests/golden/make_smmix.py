"""Makes smmix.npz: OpenMixup's `smmix` (openmixup/models/augments/smmix.py at commit 37e1372, run unmodified
with PyTorch on CPU) on given images and attention (its class token's row is kept): the pasted window and
the mixed images.

    pip install torch numpy
    python tests/golden/make_smmix.py PATH/TO/smmix.py tests/golden/smmix.npz

`.cuda()` is made a no-op (the reference moves its tensors to the GPU); the square side the reference draws
with `random.choice` is recorded by wrapping it.
"""

import importlib.util
import sys

import numpy as np
import torch

torch.Tensor.cuda = lambda self, *args, **kwargs: self  # The reference calls .cuda(); run it on CPU.

spec = importlib.util.spec_from_file_location("official_smmix", sys.argv[1])
official = importlib.util.module_from_spec(spec)
spec.loader.exec_module(official)

drawn = []
choice = official.random.choice


def recording_choice(sequence):
  drawn.append(choice(sequence))
  return drawn[-1]


official.random.choice = recording_choice
cases = {}
# (seed, batch, side, patch, heads): DeiT's 14 x 14 tokens of 16 pixels (shrunk to 2-pixel patches to keep the
# file small), and smaller grids; several draws of the square's side.
settings = [(0, 4, 14, 2, 3), (1, 5, 14, 2, 2), (2, 4, 8, 3, 2), (3, 6, 4, 4, 1), (4, 4, 14, 2, 6), (5, 3, 7, 2, 2)]
for seed, batch, side, patch, heads in settings:
  torch.manual_seed(seed)
  official.random.seed(seed)
  size = side * patch
  images = torch.randint(0, 8, (batch, 3, size, size)).float()  # Small integers: the file compresses.
  logits = torch.randn(batch, heads, side * side + 1, side * side + 1) * 2
  attention = logits.softmax(-1)
  labels = torch.arange(batch)
  drawn.clear()
  mixed, (_, y_b, lam) = official.smmix(images.clone(), labels, attention, side=side)
  case = f"case{seed}"
  cases.update({f"{case}_images": images.numpy().astype(np.uint8), f"{case}_mixed": mixed.numpy().astype(np.uint8)})
  cases[f"{case}_class_attention"] = attention[:, :, 0].numpy()  # The only row the reference reads: [B, heads, 1 + N].
  cases[f"{case}_settings"] = np.array([side, drawn[0][0], lam], np.float64)
  assert (y_b.numpy() == labels.numpy()[::-1]).all()
np.savez_compressed(sys.argv[2], **cases)
print(f"{len(settings)} cases written to {sys.argv[2]}")
