"""Co-Mixup's mixing (Kim et al., ICLR 2021, as the authors' code runs it: github.com/snu-mllab/Co-Mixup): each
group of `part` images is mixed into as many outputs at once, every output a labelling of a block grid by the
group's inputs, chosen to keep the salient blocks, to be smooth, and to differ from the other outputs.

All of it is jittable and runs on the device (the reference cuts on the host with GCO, a process per group)::

    cost = -puzzlemix.unary(saliency, blocks)            # [B, n, n]: minus each block's share of the saliency
    a = compatibility(saliency)                           # [B, B]: distances between the most salient points
    per group g of `part` images, with draws prior ~ Dirichlet(alpha) and a random first labelling:
      mask = assign(cost_g, compatibility_matrix(a_g, omega), prior, init, options)   # [n_out, n, n, n_in]
    mixed[o] = sum_j up(mask[o, ..., j]) * images[j],   its label weights: mask[o] summed over the blocks / n²

`assign` minimises, over the outputs' labellings z, the energy the paper writes (its block-coordinate descent):
each output's saliency taken (−sum of the chosen blocks' cost), beta × its label changes between neighbouring
blocks, the prior eta × −log(prior) of each chosen input, and gamma × the overlap between outputs: the
"supermodular diversity" term, made modular around the other outputs' current use of each input
(`modular_penalty`) and cut by an alpha-beta swap (`graph_cut.swap_labelling`). From the second pass on, an
output whose labelling uses two or three inputs may also take half-and-half blocks of them (extra labels).
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax import generators, graph_cut, mixing
from adamix_jax.config import ConfigError
from adamix_jax.options import Options, at_least, non_negative, one_of, option, positive, unit_interval
from adamix_jax.puzzlemix import unary as block_shares

# GCO's fixed-point scaling of float energies (pyGCO: unary × 1e5, edge weights × 1e3, label costs × 1e2).
UNARY_SCALE, EDGE_SCALE, LABEL_COST_SCALE = 100000.0, 1000.0, 100
MIXED_LABEL_COST = 25  # 0.25: between a half-and-half label and either of its inputs.
MIXED_LABEL_DISCOUNT = 5e-4  # Taken off a half-and-half label's cost (the mean of its inputs').
SALIENT_WINDOW = 8  # The side of the windows whose most salient one locates an image (the authors' main.py).


def _grid_side(blocks) -> str | None:
  fine = isinstance(blocks, int) and 2 <= blocks <= graph_cut.MAX_WIDTH
  return None if fine else f"must be an integer from 2 to {graph_cut.MAX_WIDTH}, e.g. 4"


@dataclasses.dataclass(frozen=True)
class CoMixupOptions(Options):
  """`config.comixup`: the authors' CIFAR-100 settings (their README's command for PreActResNet-18).

  Attributes:
    blocks: the labelling grid's blocks per side (m_block_num 4).
    part: the images mixed together (m_part 20): a batch is cut into groups of this many (the last may be
      smaller), each mixed into as many outputs.
    beta: label smoothness: the weight of a label change between neighbouring blocks (divided by blocks²).
    gamma: the weight of the diversity term, the overlap between outputs (divided by blocks²).
    thres: tau: an input's use by the other outputs is penalised only above thres × blocks² blocks.
    thres_type: "hard" (the whole use, above tau) or "soft" (the use beyond tau).
    eta: the weight of the Dirichlet prior over the inputs (divided by blocks²).
    omega: the weight of the inputs' compatibility (how far apart their most salient points are).
    resolve: after the second last pass, outputs with the same inputs are pushed apart (set_resolve).
    iterations: passes over the outputs at most (m_niter 4); they stop early when the energy settles.
    clean_lam: the weight of the clean batch's cross-entropy, 2 × clean_lam / classes (clean input
      regularization); 0: no clean term, and the saliency from an eval-mode pass.
  """

  section = "comixup"
  blocks: int = option("blocks", _grid_side)
  part: int = option("part", at_least(2))
  beta: float = option("beta", non_negative)
  gamma: float = option("gamma", non_negative)
  thres: float = option("thres", unit_interval)
  thres_type: str = option("thres_type", one_of("hard", "soft"))
  eta: float = option("eta", non_negative)
  omega: float = option("omega", unit_interval)
  resolve: bool = option("resolve")
  iterations: int = option("iterations", positive)
  clean_lam: float = option("clean_lam", non_negative)

  def check_size(self, size: int) -> None:
    """ConfigError unless the blocks divide the image side and the salient window fits in it."""
    if size % self.blocks:
      raise ConfigError(
        f"config.comixup.blocks = {self.blocks} does not divide the {size}-pixel images; use a count that divides "
        f"{size}."
      )
    if size < SALIENT_WINDOW:
      raise ConfigError(
        f"comixup locates salient {SALIENT_WINDOW}x{SALIENT_WINDOW} windows: images of {size} pixels are too small."
      )


def compatibility(saliency: jax.Array) -> jax.Array:
  """float32 [B, B]: the L1 distance between the most salient 8 × 8 windows of each pair of images [B, H, W]."""
  windows = jax.lax.reduce_window(saliency, 0.0, jax.lax.add, (1, SALIENT_WINDOW, SALIENT_WINDOW), (1, 1, 1), "VALID")
  side = windows.shape[-1]
  row, col = jnp.divmod(jnp.argmax(windows.reshape(windows.shape[0], -1), axis=1), side)
  points = jnp.stack([row, col], 1).astype(jnp.float32)
  return jnp.abs(points[:, None] - points[None]).sum(-1)


def compatibility_matrix(distances: jax.Array, omega: float) -> jax.Array:
  """float32 [n, n]: (1 − omega) I + omega × a group's distances scaled to sum to n (0 where all are 0; the
  reference divides 0 by 0 there)."""
  n = distances.shape[0]
  total = distances.sum()
  scaled = jnp.where(total > 0, distances / jnp.where(total > 0, total, 1.0) * n, 0.0)
  return (1 - omega) * jnp.eye(n, dtype=jnp.float32) + omega * scaled


def objective(cost: jax.Array, mask: jax.Array, beta: float, gamma: float) -> jax.Array:
  """The energy of labellings mask [n_out, h, w, n_in] under cost [n_in, h, w] (the reference's obj_fn;
  beta and gamma per block)."""
  n_out, height, width, n_in = mask.shape
  use = mask.reshape(n_out, height * width, n_in).sum(1)
  saliency = jnp.sum(jnp.transpose(cost, (1, 2, 0))[None] * mask)
  smooth = ((mask[:, :-1] - mask[:, 1:]) ** 2).sum() + ((mask[:, :, :-1] - mask[:, :, 1:]) ** 2).sum()
  overlap = jnp.sum(use.sum(0) ** 2) - jnp.sum(use**2)
  return saliency + beta / 2 * smooth + gamma * overlap


def modular_penalty(compat: jax.Array, others: jax.Array, gamma: float, thres: float, thres_type: str) -> jax.Array:
  """float32 [n_in]: the diversity term's cost of each input for one output, given the other outputs' use of
  the inputs `others` [n_in] (blocks; thres in blocks).

  "hard" keeps the reference's operator precedence: `(A @ p > thres).float() * A @ p` is
  `((A @ p > thres) * A) @ p`, which weighs input j's term by whether input j is over the threshold."""
  used = compat @ others
  if thres_type == "hard":
    return 2 * gamma * (((used > thres).astype(jnp.float32)[None, :] * compat) @ others)
  return 2 * gamma * (used > thres).astype(jnp.float32) * (used - thres)


def resolve_costs(mask: jax.Array) -> jax.Array:
  """float32 [n_out, n_in]: 1 where an output is pushed off an input because another output uses exactly the
  same inputs (two or more): the first of a pair loses its first input, the second its second."""
  n_out, n_in = mask.shape[0], mask.shape[-1]
  used = mask.reshape(n_out, -1, n_in).sum(1) > 0
  same = jnp.all(used[:, None] == used[None], -1) & jnp.triu(jnp.ones((n_out, n_out), bool), 1)
  several = used.sum(-1) >= 2
  order = jnp.cumsum(used, -1)  # The rank of each used input: 1 for the first, 2 for the second.
  first = jax.nn.one_hot(jnp.argmax(used & (order == 1), -1), n_in)
  second = jax.nn.one_hot(jnp.argmax(used & (order == 2), -1), n_in)
  earlier, later = jnp.any(same, 1) & several, jnp.any(same, 0) & several
  return jnp.maximum(first * earlier[:, None], second * later[:, None])


def cut(costs: jax.Array, use: jax.Array, mixed_labels: jax.Array, beta: float) -> jax.Array:
  """One output's labelling: float32 [h, w, n_in] (one-hot, or 0.5 and 0.5 on a half-and-half block).

  Args:
    costs: float32 [h, w, n_in], the cost of each input at each block.
    use: float32 [n_in], this output's current use of each input (blocks).
    mixed_labels: bool scalar: may the output take half-and-half labels (from the second pass on).
    beta: the weight of a label change between neighbouring blocks (per block).
  """
  height, width, n_in = costs.shape
  used = use > 0
  count = used.sum()
  # Two inputs: one extra label, their half-and-half. Three or more: the three most used (in index order)
  # and the extra labels (first, second), (first, third), (second, third).
  _, top = jax.lax.top_k(use, min(3, n_in))
  triple = jnp.zeros(n_in, bool).at[top].set(True) if n_in >= 3 else used
  kind = jnp.where(mixed_labels & (count == 2), 1, jnp.where(mixed_labels & (count >= 3), 2, 0))
  members = jnp.where(kind == 1, used, triple)
  ranked = jnp.where(members, jnp.cumsum(members) - 1, -1)  # 0, 1, 2 for the members, by index.
  halves = jnp.array([[0, 1], [0, 2], [1, 2]])  # The members each extra label mixes.
  weights = jnp.stack([((ranked == h[0]) | (ranked == h[1])).astype(jnp.float32) / 2 for h in halves])  # [3, n_in]
  enabled_extra = jnp.where(kind == 1, jnp.array([True, False, False]), jnp.full(3, kind == 2))
  sums = jnp.stack([(costs * (weights[e] > 0)).sum(-1) for e in range(3)], -1)  # Each extra's two costs summed.
  extra = sums / 2 - MIXED_LABEL_DISCOUNT
  unary = jnp.concatenate([costs, jnp.where(enabled_extra, extra, 0.0)], -1)
  enabled = jnp.concatenate([jnp.ones(n_in, bool), enabled_extra])
  # Label costs: 1 between different labels, 0.25 between an extra label and either of its two inputs.
  near = (weights > 0) & enabled_extra[:, None]  # [3, n_in]
  top_right = jnp.where(near, MIXED_LABEL_COST, LABEL_COST_SCALE)
  label_cost = LABEL_COST_SCALE * (1 - jnp.eye(n_in + 3, dtype=jnp.int32))
  label_cost = label_cost.at[n_in:, :n_in].set(top_right).at[:n_in, n_in:].set(top_right.T)
  edge = jnp.trunc(jnp.float32(beta) * jnp.float32(EDGE_SCALE)).astype(jnp.int32)
  labels = graph_cut.swap_labelling(
    jnp.trunc(unary * jnp.float32(UNARY_SCALE)).astype(jnp.int32),
    jnp.full((height - 1, width), edge),
    jnp.full((height, width - 1), edge),
    label_cost,
    enabled=enabled,
  )
  chosen = jax.nn.one_hot(labels, n_in + 3, dtype=jnp.float32)
  return chosen[..., :n_in] + chosen[..., n_in:] @ weights


def assign(cost: jax.Array, compat: jax.Array, prior: jax.Array, init: jax.Array, options: CoMixupOptions) -> jax.Array:
  """The labellings of one group's outputs (the reference's get_onehot_matrix, as many outputs as inputs).

  Args:
    cost: float32 [n, h, w], minus each block's share of its image's saliency.
    compat: float32 [n, n], `compatibility_matrix`.
    prior: float32 [n], a Dirichlet(alpha) draw: the prior's weight of each input.
    init: int [n, h, w], the first labelling (uniform draws of an input per block).
    options: the weights.

  Returns:
    float32 [n, h, w, n]: output o's weight of input j at each block (0, 0.5 or 1).
  """
  n, height, width = cost.shape
  blocks = height * width
  beta, gamma, eta = options.beta / blocks, options.gamma / blocks, options.eta / blocks
  thres = options.thres * blocks
  cost = cost - eta * jnp.log(prior + 1e-8)[:, None, None]
  mask = jax.nn.one_hot(init, n, dtype=jnp.float32)
  costs = jnp.transpose(cost, (1, 2, 0))

  def one_pass(state):
    index, mask, add, previous, _ = state

    def one_output(i, carry):
      mask, total = carry
      use = mask[i].reshape(blocks, n).sum(0)
      others = total - use
      penalty = modular_penalty(compat, others, gamma, thres, options.thres_type)
      labelling = cut(costs + penalty + gamma * add[i], use, index > 0, beta)
      return mask.at[i].set(labelling), others + labelling.reshape(blocks, n).sum(0)

    mask, _ = jax.lax.fori_loop(0, n, one_output, (mask, mask.reshape(n * blocks, n).sum(0)))
    if options.resolve:
      add = jnp.where(index == options.iterations - 2, resolve_costs(mask), add)
    energy = objective(cost, mask, beta, gamma)
    settled = jnp.abs(previous - energy) / jnp.abs(energy) < 1e-6
    return index + 1, mask, add, energy, settled | (index + 1 >= options.iterations)

  # Built from the inputs (zeros_like), the loop's carries vary over the devices as they do inside shard_map.
  energy = objective(cost, mask, beta, gamma)
  start = (jnp.zeros_like(init[0, 0, 0]), mask, jnp.zeros_like(compat), energy, jnp.zeros_like(energy, bool))
  _, mask, *_ = jax.lax.while_loop(lambda s: ~s[-1], one_pass, start)
  return mask


def mix_group(images: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One group's outputs: (mixed images [n, H, W, C], label weights [n_in, n], per-pixel weights [n, H, W, n_in])
  of images [n_in, H, W, C] under mask [n, h, w, n_in]."""
  weight = generators.upsample(mask, images.shape[1] // mask.shape[1], "nearest")
  mixed = jnp.einsum("ohwj,jhwc->ohwc", weight, images)
  lams = mask.sum((1, 2)) / (mask.shape[1] * mask.shape[2])
  return mixed.astype(images.dtype), lams.T, weight


def mix(
  images: jax.Array, labels: jax.Array, saliency: jax.Array, key: jax.Array, alpha: float, options
) -> mixing.MixResult:
  """Co-Mixup's mixed batch of images [B, H, W, C] with labels [B] and saliency [B, H, W].

  The batch is cut into groups of `options.part` (the last holds the rest); each group draws its prior
  ~ Dirichlet(alpha) and its first labelling. Returns a MixResult with K = min(part, B) sources per output:
  labels [K, B] (the group's labels), lams [K, B] and masks [B, H, W, K] (zero for the sources a smaller last
  group lacks).
  """
  batch = images.shape[0]
  part = min(options.part, batch)
  cost = -block_shares(saliency, options.blocks)
  distances = compatibility(saliency)

  def group(images, labels, cost, distances, key):
    n = labels.shape[0]
    prior_key, init_key = jax.random.split(key)
    prior = jax.random.dirichlet(prior_key, jnp.full((n,), alpha, jnp.float32)).astype(jnp.float32)
    init = jax.random.randint(init_key, (n, options.blocks, options.blocks), 0, n)
    mask = assign(cost, compatibility_matrix(distances, options.omega), prior, init, options)
    mixed, lams, weight = mix_group(images, mask)
    pad = part - n  # A smaller last group: its missing sources weigh 0.
    sources = jnp.broadcast_to(labels[:, None], (n, n))
    return (
      mixed,
      *(jnp.pad(x, ((0, pad), (0, 0))) for x in (sources, lams)),
      jnp.pad(weight, ((0, 0),) * 3 + ((0, pad),)),
    )

  full, rest = divmod(batch, part)
  keys = jax.random.split(key, full + (rest > 0))
  whole = full * part

  def grouped(x):
    return x[:whole].reshape(full, part, *x.shape[1:])

  diagonal = distances[:whole, :whole].reshape(full, part, full, part)[jnp.arange(full), :, jnp.arange(full)]
  mixed, sources, lams, weight = jax.vmap(group)(grouped(images), grouped(labels), grouped(cost), diagonal, keys[:full])
  mixed, weight = mixed.reshape(whole, *mixed.shape[2:]), weight.reshape(whole, *weight.shape[2:])
  sources, lams = (jnp.moveaxis(x, 0, 1).reshape(part, whole) for x in (sources, lams))
  if rest:
    tail = slice(whole, batch)
    last = group(images[tail], labels[tail], cost[tail], distances[tail, tail], keys[-1])
    mixed, weight = jnp.concatenate([mixed, last[0]]), jnp.concatenate([weight, last[3]])
    sources, lams = jnp.concatenate([sources, last[1]], 1), jnp.concatenate([lams, last[2]], 1)
  return mixing.MixResult(mixed, sources, lams, weight)
