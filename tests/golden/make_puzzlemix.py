"""Makes puzzlemix.npz: OpenMixup's `puzzlemix` (openmixup/models/augments/puzzlemix.py at commit 37e1372, run
unmodified with PyTorch on CPU and pyGCO's graph cut) on small inputs, with what it computes inside.

    pip install torch gco-wrapper numpy      # gco-wrapper has wheels for Python <= 3.11
    python tests/golden/make_puzzlemix.py PATH/TO/puzzlemix.py tests/golden/puzzlemix.npz

`.cuda()` is made a no-op (the reference moves its tensors to the GPU); the graph cut and the transport plans
are recorded by wrapping the module's own functions, which still compute everything.
"""

import importlib.util
import sys

import numpy as np
import torch

torch.Tensor.cuda = lambda self, *args, **kwargs: self  # The reference calls .cuda(); run it on CPU.

spec = importlib.util.spec_from_file_location("official_puzzlemix", sys.argv[1])
official = importlib.util.module_from_spec(spec)
spec.loader.exec_module(official)

recorded = {}
graphcut, transport = official.graphcut_multi, official.mask_transport


def record_graphcut(unary1, unary2, pw_x, pw_y, alpha, beta, eta, n_labels=2, eps=1e-8):
  recorded.setdefault("graphcut_inputs", []).append((unary1, unary2, pw_x, pw_y))
  recorded["gc_alpha"] = alpha
  mask = graphcut(unary1, unary2, pw_x, pw_y, alpha, beta, eta, n_labels, eps)
  recorded.setdefault("masks", []).append(mask)
  return mask


def record_transport(mask, grad_pool, eps=0.01):
  plan = transport(mask, grad_pool, eps)
  recorded.setdefault("plans", []).append(plan.numpy())
  return plan


official.graphcut_multi, official.mask_transport = record_graphcut, record_transport

cases = {}
for case, (seed, size, n_labels, block_range) in enumerate(
  [
    (0, 32, 3, 4),
    (1, 32, 3, 4),
    (2, 32, 2, 4),
    (3, 32, 3, 4),
    (4, 16, 3, 3),
    (5, 32, 2, 3),
    (6, 32, 3, 4),
    (7, 32, 3, 4),
  ]
):
  np.random.seed(seed)
  torch.manual_seed(seed)
  batch = 6
  # Smooth images (noise at 1/4 resolution, upsampled) and saliency in one or two blobs, as gradients are.
  images = torch.nn.functional.interpolate(torch.randn(batch, 3, size // 4, size // 4), size=size, mode="bilinear")
  grid = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"), -1).float()
  centres = torch.rand(batch, 2, 2) * size
  widths = 2 + torch.rand(batch, 2) * size / 4
  distance = ((grid[None, None] - centres[:, :, None, None]) ** 2).sum(-1)
  saliency = (torch.exp(-distance / (2 * widths[..., None, None] ** 2)) * torch.rand(batch, 2, 1, 1)).sum(1)
  saliency = saliency + 0.05 * torch.rand(batch, size, size)
  labels = torch.nn.functional.one_hot(torch.arange(batch) % 4, 4).float()
  recorded.clear()
  torch.manual_seed(100 + seed)
  np.random.seed(100 + seed)
  state = np.random.get_state()
  lam = np.random.beta(1.0, 1.0)
  block_num = 2 ** np.random.randint(1, block_range)
  np.random.set_state(state)
  torch.manual_seed(100 + seed)
  perm = torch.randperm(batch)
  torch.manual_seed(100 + seed)
  mixed, (y_a, y_b, lams) = official.puzzlemix(
    images.clone(),
    labels,
    alpha=1.0,
    features=saliency,
    block_num=block_range,
    beta=1.2,
    gamma=0.5,
    eta=0.2,
    neigh_size=4,
    n_labels=n_labels,
    t_eps=0.8,
    t_size=-1,
    transport=True,
    t_batch_size=None,
  )
  prefix = f"case{case}."
  cases.update(
    {
      prefix + "images": images.numpy(),
      prefix + "saliency": saliency.numpy(),
      prefix + "perm": perm.numpy(),
      prefix + "lam": np.float64(lam),
      prefix + "block_num": np.int64(block_num),
      prefix + "n_labels": np.int64(n_labels),
      prefix + "mixed": mixed.numpy(),
      prefix + "lams": lams.numpy(),
      prefix + "block_masks": np.stack(recorded["masks"]),
      prefix + "plan1": recorded["plans"][0],
      prefix + "plan2": recorded["plans"][1],
      prefix + "gc_alpha": np.float64(recorded["gc_alpha"]),
    }
  )
  print(
    case,
    "block_num",
    block_num,
    "lam",
    round(lam, 4),
    "gc alpha",
    round(recorded["gc_alpha"], 4),
    "lams",
    np.round(lams.numpy(), 3),
  )
# GCO's alpha-beta swap alone, on random grids of 2 and 3 labels (integer costs, the reference's label costs).
import gco  # noqa: E402

rng = np.random.default_rng(0)
for case in range(36):
  n, labels = (2, 4, 8)[case % 3], (2, 3)[(case // 3) % 2]
  unary_cost = rng.integers(0, 1000, (n, n, labels)).astype(np.int32)
  label_cost = np.array([[(i - j) ** 2 / (labels - 1) ** 2 for j in range(labels)] for i in range(labels)], np.float32)
  cost_v, cost_h = rng.integers(0, 600, (n - 1, n)).astype(np.int32), rng.integers(0, 600, (n, n - 1)).astype(np.int32)
  result = gco.cut_grid_graph(unary_cost, label_cost, cost_v, cost_h, algorithm="swap").reshape(n, n)
  cases.update(
    {
      f"swap{case}.unary": unary_cost,
      f"swap{case}.label_cost": label_cost,
      f"swap{case}.cost_v": cost_v,
      f"swap{case}.cost_h": cost_h,
      f"swap{case}.labels": result,
    }
  )
np.savez_compressed(sys.argv[2], **cases)
