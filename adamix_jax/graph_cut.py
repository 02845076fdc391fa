"""Multi-label graph cuts on small grids, on the device: the labelling PuzzleMix draws its masks from.

A labelling l of an h × w grid costs

    E(l) = sum_i unary[i, l_i] + sum_{i ~ j} weight_ij * label_cost[l_i, l_j]

over the 4-neighbour edges (`weight_v` between (r, c) and (r + 1, c), `weight_h` between (r, c) and
(r, c + 1)). `swap_labelling` lowers it by alpha-beta swaps from the all-zero labelling, as GCO does for
PuzzleMix (`gco.cut_grid_graph(..., algorithm="swap")`): for each pair of labels a < b in turn (GCO's order), the nodes
labelled a or b take whichever of the two gives the least energy, the others fixed, found exactly by one
minimum s-t cut; the rounds repeat until one changes nothing. Each cut is a parallel push-relabel on a dense
capacity matrix, a `lax.while_loop` of array operations: the grids are at most 16 × 16, so the matrix has
at most 258² entries, and the whole batch is cut at once under `vmap`.

Ties: where two labellings cost the same, the node keeps label a (GCO's choice: its max-flow puts nodes that
reach neither terminal on the source side).
"""

import jax
import jax.numpy as jnp


def _max_flow_source_side(capacity: jax.Array) -> jax.Array:
  """The source side of a minimum s-t cut, the largest one: every node that cannot reach t.

  Args:
    capacity: float32 [n + 2, n + 2], non-negative; node n is the source s, node n + 1 the sink t.

  Returns:
    bool [n]: the nodes on the source side.
  """
  size = capacity.shape[0]
  source, sink = size - 2, size - 1
  # A flow below this is rounding; the capacities of one graph are integers or sums of a few terms.
  tolerance = 1e-6 * jnp.maximum(jnp.max(capacity), 1.0)
  flow = jnp.zeros_like(capacity).at[source].set(capacity[source])
  flow = flow.at[:, source].set(-capacity[source])
  excess = capacity[source].at[source].set(0.0)
  # Built from the inputs (full_like), the loop's carries vary over the devices as they do inside shard_map.
  height = jnp.full_like(capacity[0], 0, dtype=jnp.int32).at[source].set(size)
  inner = jnp.arange(size) < source

  def active(height, excess):
    return inner & (excess > tolerance) & (height < size)

  def step(carry):
    flow, excess, height = carry
    residual = capacity - flow
    # Push: each active node sends its excess along admissible edges (residual, one level down), in order.
    admissible = (residual > tolerance) & (height[:, None] == height[None, :] + 1)
    offered = jnp.where(admissible & active(height, excess)[:, None], residual, 0.0)
    before = jnp.cumsum(offered, axis=1) - offered
    push = jnp.clip(excess[:, None] - before, 0.0, offered)
    flow = flow + push - push.T
    excess = excess - push.sum(1) + push.sum(0)
    # Relabel: an active node with no admissible edge left rises one above its lowest residual neighbour.
    residual = capacity - flow
    stuck = active(height, excess) & ~jnp.any((residual > tolerance) & (height[:, None] == height[None, :] + 1), 1)
    lowest = jnp.min(jnp.where(residual > tolerance, height[None, :], 2 * size), axis=1)
    height = jnp.where(stuck, jnp.minimum(lowest + 1, size), height)
    return flow, excess, height

  flow, _, _ = jax.lax.while_loop(lambda c: jnp.any(active(c[2], c[1])), step, (flow, excess, height))
  # The nodes that reach t through residual edges are the sink side; every other node is the source side.
  residual = (capacity - flow) > tolerance
  reaches = jnp.zeros_like(capacity[0], dtype=bool).at[sink].set(True)
  reaches = jax.lax.fori_loop(0, size, lambda _, r: r | jnp.any(residual & r[None, :], axis=1), reaches)
  return ~reaches[:source]


def _grid_adjacency(weight_v: jax.Array, weight_h: jax.Array) -> jax.Array:
  """float32 [n, n]: the symmetric edge weights of an h × w grid (n = h w, row-major)."""
  rows, cols = weight_h.shape[0], weight_v.shape[1]
  index = jnp.arange(rows * cols).reshape(rows, cols)
  adjacency = jnp.zeros((rows * cols, rows * cols), weight_v.dtype)
  adjacency = adjacency.at[index[:-1].ravel(), index[1:].ravel()].set(weight_v.ravel())
  adjacency = adjacency.at[index[:, :-1].ravel(), index[:, 1:].ravel()].set(weight_h.ravel())
  return adjacency + adjacency.T


def energy(labels, unary, weight_v, weight_h, label_cost) -> jax.Array:
  """E(labels) of one grid: labels int [h, w], unary [h, w, L], weights [h - 1, w] and [h, w - 1]."""
  data = jnp.take_along_axis(unary, labels[..., None], axis=-1).sum()
  vertical = (weight_v * label_cost[labels[:-1], labels[1:]]).sum()
  horizontal = (weight_h * label_cost[labels[:, :-1], labels[:, 1:]]).sum()
  return data + vertical + horizontal


def _swap(labels, unary, adjacency, label_cost, a: int, b: int):
  """One alpha-beta swap move of labels a and b, exactly: the nodes labelled a or b re-choose between them."""
  n = labels.shape[0]
  moving = (labels == a) | (labels == b)
  # The cost of a and of b at each node: its own, plus its edges to the nodes that keep their labels.
  fixed_cost = adjacency * jnp.where(moving, 0.0, 1.0)[None, :]
  cost_a = unary[:, a] + fixed_cost @ label_cost[a, labels]
  cost_b = unary[:, b] + fixed_cost @ label_cost[b, labels]
  # Source side = label a: a node cut from the source (on the sink side, b) pays cost_b, from the sink cost_a.
  shift = jnp.minimum(cost_a, cost_b)
  to_source, to_sink = cost_b - shift, cost_a - shift
  between = adjacency * label_cost[a, b] * (moving[:, None] & moving[None, :])
  capacity = jnp.zeros((n + 2, n + 2), unary.dtype)
  capacity = capacity.at[:n, :n].set(between)
  capacity = capacity.at[n, :n].set(jnp.where(moving, to_source, 0.0))
  capacity = capacity.at[:n, n + 1].set(jnp.where(moving, to_sink, 0.0))
  source_side = _max_flow_source_side(capacity)
  return jnp.where(moving, jnp.where(source_side, a, b), labels)


def swap_labelling(
  unary: jax.Array, weight_v: jax.Array, weight_h: jax.Array, label_cost: jax.Array, max_rounds: int = 10
) -> jax.Array:
  """The alpha-beta swap labelling of one grid, from all zeros, until a round changes nothing.

  Args:
    unary: float32 [h, w, L], each node's cost of each label.
    weight_v: float32 [h - 1, w], the weight of the edge between (r, c) and (r + 1, c); non-negative.
    weight_h: float32 [h, w - 1], the weight of the edge between (r, c) and (r, c + 1); non-negative.
    label_cost: float32 [L, L], a semi-metric (zero on the diagonal, symmetric, non-negative).
    max_rounds: at most this many rounds over the label pairs (GCO has no bound; 2 or 3 rounds are typical).

  Returns:
    int32 [h, w], the labelling.
  """
  rows, cols, num_labels = unary.shape
  flat_unary = unary.reshape(rows * cols, num_labels)
  adjacency = _grid_adjacency(weight_v, weight_h)
  # GCO's order of the moves, as it runs (measured against it): a from the lowest, b from the highest.
  pairs = [(a, b) for a in range(num_labels) for b in reversed(range(a + 1, num_labels))]

  def one_round(carry):
    labels, _, rounds = carry
    new = labels
    for a, b in pairs:
      new = _swap(new, flat_unary, adjacency, label_cost, a, b)
    return new, jnp.any(new != labels), rounds + 1

  start = jnp.full_like(flat_unary[:, 0], 0, dtype=jnp.int32)
  changed, rounds = jnp.full_like(flat_unary[0, 0], True, dtype=bool), jnp.full_like(flat_unary[0, 0], 0, jnp.int32)
  labels, _, _ = jax.lax.while_loop(lambda c: c[1] & (c[2] < max_rounds), one_round, (start, changed, rounds))
  return labels.reshape(rows, cols)
