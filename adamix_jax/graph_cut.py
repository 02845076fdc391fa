"""Multi-label graph cuts on small grids, on the device: the labellings PuzzleMix and Co-Mixup mix by.

A labelling l of an h × w grid costs

    E(l) = sum_i unary[i, l_i] + sum_{i ~ j} weight_ij * label_cost[l_i, l_j]

over the 4-neighbour edges (`weight_v` between (r, c) and (r + 1, c), `weight_h` between (r, c) and
(r, c + 1)), all integers, as GCO takes them. `swap_labelling` lowers it by alpha-beta swaps from the
all-zero labelling, as GCO does for both (`gco.cut_grid_graph(..., algorithm="swap")`): for each pair of
labels (a, b) in GCO's order, the nodes labelled a or b take whichever of the two gives the least energy, the
others fixed; the rounds repeat until one changes nothing.

GCO solves each move with a max-flow. On a grid a few blocks wide the move is solved exactly, and faster on
an accelerator, by dynamic programming over the rows: a row's state is the binary choice of its w nodes (2^w
states, w <= `MAX_WIDTH`), and the cost between two rows' states is a sum over the columns, so the minimum
over the previous row is taken one column at a time (w 2^w operations per row instead of 4^w). Where several
choices cost the same, GCO's max-flow leaves on label a every node that cannot reach the sink: of the
optimal choices, the one with the most nodes on a. The programme minimises (energy, nodes on b) in that
order, which picks exactly that choice.
"""

import functools

import jax
import jax.numpy as jnp

MAX_WIDTH = 10  # 2^10 states per row; PuzzleMix's grids are at most 8 blocks wide.
# The swap's moves solved at once (below). Co-Mixup's batch of 100 on a 2-core CPU: 4 -> 365 ms, 8 -> 342 ms,
# 16 -> 391 ms, all 2L = 46 that may matter -> 661 ms (more at once: fewer but dearer loop steps).
MOVES_AT_ONCE = 8


def energy(labels, unary, weight_v, weight_h, label_cost) -> jax.Array:
  """E(labels) of one grid: labels int [h, w], unary [h, w, L], weights [h - 1, w] and [h, w - 1]."""
  data = jnp.take_along_axis(unary, labels[..., None], axis=-1).sum()
  vertical = (weight_v * label_cost[labels[:-1], labels[1:]]).sum()
  horizontal = (weight_h * label_cost[labels[:, :-1], labels[:, 1:]]).sum()
  return data + vertical + horizontal


def _lexmin(first, second):
  """Elementwise the smaller of two (energy, count) pairs, and whether it is the second."""
  take = (second[0] < first[0]) | ((second[0] == first[0]) & (second[1] < first[1]))
  return (jnp.where(take, second[0], first[0]), jnp.where(take, second[1], first[1])), take


def _binary_minimum(choice_cost, moving, between_v, between_h):
  """The optimal binary choice of every node: 0 (label a) or 1 (label b), ties to the most 0s among moving nodes.

  Args:
    choice_cost: int32 [h, w, 2], each node's cost of 0 and of 1.
    moving: bool [h, w], the nodes whose choice counts (the others cost the same either way).
    between_v: int32 [h - 1, w], the cost of different choices across each vertical edge.
    between_h: int32 [h, w - 1], the same across each horizontal edge.

  Returns:
    int32 [h, w] of 0 and 1.
  """
  rows, cols = moving.shape
  states = jnp.arange(2**cols)
  bits = (states[:, None] >> jnp.arange(cols)) & 1  # [S, w]: the choice of each column in each row state.
  steps = jnp.abs(jnp.diff(bits, axis=1))  # [S, w - 1]: where neighbours in a row differ.

  def row_value(cost, between, count):
    """(energy, nodes on b) of each state of one row: cost [w, 2], between [w - 1], count [w]."""
    energy = jnp.where(bits == 1, cost[:, 1], cost[:, 0]).sum(1) + (steps * between).sum(1)
    return energy, (bits * count).sum(1)

  def next_row(value, row):
    """The best (energy, count) of each state of this row over the previous rows, and the choices made."""
    cost, between, count, vertical = row

    def column(value, c):
      # After column c, bits 0..c of the state are this row's and bits c+1.. the previous row's.
      own = (states >> c) & 1
      candidates = []
      for t in (0, 1):
        source = states & ~(1 << c) | (t << c)
        candidates.append((value[0][source] + vertical[c] * (own != t), value[1][source]))
      return _lexmin(*candidates)

    value, choices = jax.lax.scan(column, value, jnp.arange(cols))
    energy, count = row_value(cost, between, count)
    return (value[0] + energy, value[1] + count), choices

  count = moving.astype(jnp.int32)
  first = row_value(choice_cost[0], between_h[0], count[0])
  rest = (choice_cost[1:], between_h[1:], count[1:], between_v)
  value, choices = jax.lax.scan(next_row, first, rest)  # choices: bool [h - 1, w, S].
  best = jnp.lexsort((value[1], value[0]))[0]

  def previous_row(state, row_choices):
    """The previous row's state that led to `state`, undoing the columns from the last."""

    def undo(state, c):
      bit = row_choices[c, state].astype(state.dtype)
      return state & ~(1 << c) | (bit << c), None

    earlier, _ = jax.lax.scan(undo, state, jnp.arange(cols - 1, -1, -1))
    return earlier, earlier

  _, earlier = jax.lax.scan(previous_row, best, choices, reverse=True)
  row_states = jnp.concatenate([earlier, best[None]])  # [h]
  return ((row_states[:, None] >> jnp.arange(cols)) & 1).astype(jnp.int32)


def _swap(labels, unary, weight_v, weight_h, label_cost, a: int, b: int):
  """One alpha-beta swap move of labels a and b: the nodes labelled a or b re-choose between them, exactly."""
  moving = (labels == a) | (labels == b)
  # The cost of a and of b at each node: its own, plus its edges to neighbours that keep their labels.
  fixed = jnp.where(moving, 0, 1)

  def edges_to_fixed(label):
    cost = unary[..., label]
    down = weight_v * label_cost[label, labels[1:]] * fixed[1:]
    up = weight_v * label_cost[label, labels[:-1]] * fixed[:-1]
    right = weight_h * label_cost[label, labels[:, 1:]] * fixed[:, 1:]
    left = weight_h * label_cost[label, labels[:, :-1]] * fixed[:, :-1]
    cost = cost.at[:-1].add(down).at[1:].add(up).at[:, :-1].add(right).at[:, 1:].add(left)
    return jnp.where(moving, cost, 0)

  choice_cost = jnp.stack([edges_to_fixed(a), edges_to_fixed(b)], -1)
  between_v = weight_v * label_cost[a, b] * (moving[:-1] & moving[1:])
  between_h = weight_h * label_cost[a, b] * (moving[:, :-1] & moving[:, 1:])
  choice = _binary_minimum(choice_cost, moving, between_v, between_h)
  return jnp.where(moving, jnp.where(choice == 1, b, a), labels)


def swap_labelling(
  unary: jax.Array,
  weight_v: jax.Array,
  weight_h: jax.Array,
  label_cost: jax.Array,
  max_rounds: int = 10,
  enabled: jax.Array | None = None,
) -> jax.Array:
  """The alpha-beta swap labelling of one grid, from all zeros, until a round changes nothing.

  GCO makes the moves one after another, most of them changing nothing (a move between two labels no node
  has). Here the next `MOVES_AT_ONCE` moves of the round that involve a label some node has are solved at
  once from the current labelling, and the first that changes it is made: the moves before it are exactly
  the no-ops GCO would have made. A loop step is one effective move (or that many no-ops), so many labels
  (Co-Mixup's 20 or more) take far fewer steps than GCO's sequence of moves.

  Args:
    unary: int32 [h, w, L], each node's cost of each label (w <= MAX_WIDTH).
    weight_v: int32 [h - 1, w], the weight of the edge between (r, c) and (r + 1, c); non-negative.
    weight_h: int32 [h, w - 1], the weight of the edge between (r, c) and (r, c + 1); non-negative.
    label_cost: int32 [L, L], a semi-metric (zero on the diagonal, symmetric, non-negative).
    max_rounds: at most this many rounds over the label pairs (GCO has no bound; 2 or 3 rounds are typical).
    enabled: bool [L], the labels of this problem (None: all); the others are never moved to, so the
      labelling is GCO's on the enabled labels alone (label 0 must be enabled: every node starts on it).

  Returns:
    int32 [h, w], the labelling.
  """
  rows, cols, num_labels = unary.shape
  if cols > MAX_WIDTH:
    raise ValueError(f"swap_labelling takes grids at most {MAX_WIDTH} wide, not {cols}.")
  unary, weight_v, weight_h, label_cost = (x.astype(jnp.int32) for x in (unary, weight_v, weight_h, label_cost))
  # GCO's order of the moves, as it runs (measured against it): a from the lowest, b from the highest.
  pairs = jnp.array([(a, b) for a in range(num_labels) for b in reversed(range(a + 1, num_labels))], jnp.int32)
  num_pairs = pairs.shape[0]
  usable = jnp.ones(num_pairs, bool) if enabled is None else enabled[pairs[:, 0]] & enabled[pairs[:, 1]]

  window = min(num_pairs, MOVES_AT_ONCE)

  def one_move(carry):
    labels, start, position, rounds, _ = carry
    present = jnp.zeros(num_labels, bool).at[labels].set(True)
    relevant = usable & (jnp.arange(num_pairs) >= position) & (present[pairs[:, 0]] | present[pairs[:, 1]])
    (ahead,) = jnp.nonzero(relevant, size=window, fill_value=num_pairs)  # The next `window` of them, in order.
    chosen = pairs[jnp.minimum(ahead, num_pairs - 1)]
    move = functools.partial(_swap, labels, unary, weight_v, weight_h, label_cost)
    moved = jax.vmap(move)(chosen[:, 0], chosen[:, 1])
    changes = (ahead < num_pairs) & jnp.any(moved != labels, axis=(1, 2))
    found, first = jnp.any(changes), jnp.argmax(changes)
    labels = jnp.where(found, moved[first], labels)
    # After the change, or after the window's last move (the round's end if the window was not full).
    position = jnp.where(found, ahead[first], ahead[-1]) + 1
    round_over = position >= num_pairs
    # At the end of a round: another if this one changed the labelling and the bound allows it.
    go_on = ~round_over | (jnp.any(labels != start) & (rounds + 1 < max_rounds))
    start = jnp.where(round_over, labels, start)
    return labels, start, jnp.where(round_over, 0, position), rounds + round_over, go_on

  # Built from the inputs (full_like), the loop's carries vary over the devices as they do inside shard_map.
  start = jnp.full_like(unary[..., 0], 0)
  zero = jnp.full_like(unary[0, 0, 0], 0)
  carry = (start, start, zero, zero, zero == 0)
  labels, *_ = jax.lax.while_loop(lambda c: c[-1], one_move, carry)
  return labels
