"""Makes comixup.npz: the Co-Mixup authors' code (github.com/snu-mllab/Co-Mixup at commit 2a76816: `mixup.py`'s
`mixup_process` and `match.py`, run with PyTorch on CPU and pyGCO's graph cut) on small inputs, with what it
computes inside.

    pip install torch gco-wrapper numpy      # gco-wrapper has wheels for Python <= 3.11
    python tests/golden/make_comixup.py PATH/TO/Co-Mixup tests/golden/comixup.npz

The reference runs on the GPU: its `device='cuda'` arguments are made `'cpu'` as the modules are loaded, the
only change. `torch.topk` (its choice of an output's three most used inputs) leaves the order among equal
counts unspecified, and CPU and CUDA break such ties differently: the script makes it take the lowest index
first, the rule ours follows, and counts the ties that rule decided (the last of each case's `settings`).
Its random draws (the Dirichlet prior, the random first labelling) and its graph cuts are recorded by
wrapping its own functions, which still compute everything. The compatibility matrix `A_dist` is computed as
the authors' `main.py` computes it (lines 301-310: the argmax of the saliency's 8 × 8 means, L1 distances
between those points).
"""

import os
import sys
import types

import numpy as np
import torch


def load(directory, name):
  """The module `name` of the authors' code, its 'cuda' device made 'cpu'."""
  with open(os.path.join(directory, name + ".py")) as file:
    source = file.read().replace("'cuda'", "'cpu'")
  module = types.ModuleType(name)
  sys.modules[name] = module
  exec(compile(source, name + ".py", "exec"), module.__dict__)
  return module


directory, out = sys.argv[1], sys.argv[2]
match = load(directory, "match")
mixup = load(directory, "mixup")
recorded = {}

random_initialize, graphcut_multi = match.random_initialize, match.graphcut_multi


def record_initialize(n_input, n_output, height, width):
  init = random_initialize(n_input, n_output, height, width)
  recorded.setdefault("init", []).append(init)
  return init


def record_graphcut(cost, beta=1, algorithm="swap", n_label=0, add_idx=None):
  labels = graphcut_multi(cost, beta=beta, algorithm=algorithm, n_label=n_label, add_idx=add_idx)
  recorded.setdefault("cuts", []).append((cost, n_label, add_idx, labels))
  return labels


dirichlet_sample = torch.distributions.dirichlet.Dirichlet.sample


def record_dirichlet(self, *args, **kwargs):
  draw = dirichlet_sample(self, *args, **kwargs)
  recorded.setdefault("prior", []).append(draw.numpy())
  return draw


topk = torch.topk


def lowest_index_topk(values, k):
  """torch.topk with equal values taken lowest index first (a stable sort)."""
  order = torch.sort(values, descending=True, stable=True).indices[:k]
  if len(values) > k and values[order[-1]] == torch.sort(values, descending=True).values[k]:
    recorded["topk_ties"] = recorded.get("topk_ties", 0) + 1
  return torch.return_types.topk((values[order], order))


match.random_initialize, match.graphcut_multi = record_initialize, record_graphcut
torch.topk = lowest_index_topk
torch.distributions.dirichlet.Dirichlet.sample = record_dirichlet


def compatibility(sc):
  """The authors' main.py: the L1 distance between the most salient 8 × 8 windows of each pair."""
  z = torch.nn.functional.avg_pool2d(sc, kernel_size=8, stride=1)
  z_idx_1d = torch.argmax(z.reshape(sc.shape[0], -1), dim=1)
  z_idx_2d = torch.stack([z_idx_1d // z.shape[-1], z_idx_1d % z.shape[-1]], 1).float()
  return (z_idx_2d.unsqueeze(1) - z_idx_2d.unsqueeze(0)).abs().sum(-1)


arrays = {}
cuts_kept = 0
# (seed, batch, size, m_part, m_block_num, m_thres_type, set_resolve, m_niter)
for case, (seed, batch, size, part, blocks, thres_type, resolve, niter) in enumerate(
  [
    (0, 10, 32, 5, 4, "hard", True, 4),
    (1, 12, 32, 6, 4, "hard", True, 4),
    (2, 14, 32, 5, 4, "hard", True, 4),  # A partition of 4 after two of 5.
    (3, 8, 32, 8, 4, "soft", True, 4),
    (4, 8, 32, 4, 2, "hard", False, 3),
    (5, 6, 32, 6, 8, "hard", True, 4),
    (6, 20, 32, 20, 4, "hard", True, 4),  # The authors' partition of 20.
    (7, 9, 16, 3, 4, "hard", True, 2),
  ]
):
  torch.manual_seed(seed)
  np.random.seed(seed)
  # Small-integer images (stored as uint8; their mixtures, of halves, exactly as float16), saliency in one
  # or two blobs, as gradients are.
  images = torch.randint(0, 256, (batch, 3, size, size)).float()
  grid = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"), -1).float()
  centres = torch.rand(batch, 2, 2) * size
  widths = 2 + torch.rand(batch, 2) * size / 4
  distance = ((grid[None, None] - centres[:, :, None, None]) ** 2).sum(-1)
  sc = (torch.exp(-distance / (2 * widths[..., None, None] ** 2)) * torch.rand(batch, 2, 1, 1)).sum(1)
  sc = sc + 0.05 * torch.rand(batch, size, size)
  labels = torch.randint(0, 7, (batch,))
  targets = torch.nn.functional.one_hot(labels, 7).float()
  a_dist = compatibility(sc)
  args = types.SimpleNamespace(
    m_block_num=blocks, m_part=part, m_beta=0.32, m_gamma=1.0, m_thres=0.83, m_thres_type=thres_type,
    m_eta=0.05, mixup_alpha=2.0, m_omega=0.001, set_resolve=resolve, m_niter=niter,
  )  # fmt: skip
  recorded.clear()
  torch.manual_seed(100 + seed)
  np.random.seed(100 + seed)
  outputs = {}
  mix_input = match.mix_input

  def record_mix(mask_onehot, input_sp, target_reweighted, sc=None, mix_input=mix_input):
    recorded.setdefault("masks", []).append(mask_onehot.numpy())
    return mix_input(mask_onehot, input_sp, target_reweighted, sc)

  mixup.mix_input = record_mix
  mixed, target = mixup.mixup_process(images.clone(), targets.clone(), args=args, sc=sc.clone(), A_dist=a_dist.clone())
  name = f"case{case}"
  settings = [blocks, part, niter, int(resolve), int(thres_type == "soft"), recorded.get("topk_ties", 0)]
  arrays.update({
    f"{name}.images": images.numpy().astype(np.uint8), f"{name}.saliency": sc.numpy(), f"{name}.labels": labels.numpy(),
    f"{name}.a_dist": a_dist.numpy(), f"{name}.settings": np.array(settings),
    f"{name}.prior": np.concatenate(recorded["prior"]), f"{name}.init": np.concatenate(recorded["init"]),
    f"{name}.mixed": mixed.numpy().astype(np.float16), f"{name}.target": target.numpy(),
  })  # fmt: skip
  arrays.update({f"{name}.mask{p}": mask for p, mask in enumerate(recorded["masks"])})  # [n, h, w, n] each.
  # Some of its graph cuts, of each kind (plain, a label added between two, three between three).
  kinds = {}
  for cost, n_label, add_idx, cut in recorded["cuts"]:
    kinds.setdefault(n_label, []).append((cost, add_idx, cut))
  for n_label, cuts in kinds.items():
    for cost, add_idx, cut in cuts[:3]:
      key = f"cut{cuts_kept}"
      arrays.update({
        f"{key}.cost": cost, f"{key}.kind": np.array(n_label), f"{key}.labels": cut,
        f"{key}.add_idx": np.zeros(cost.shape[-1], bool) if add_idx is None else add_idx,
      })  # fmt: skip
      cuts_kept += 1
  values = np.unique(np.concatenate([m.ravel() for m in recorded["masks"]]))
  print(name, {n: len(c) for n, c in kinds.items()}, "ties", recorded.get("topk_ties", 0), "mask values", values)

np.savez_compressed(out, **arrays)
print("wrote", out, len(arrays), "arrays,", cuts_kept, "cuts")
