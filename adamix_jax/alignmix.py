"""AlignMix's feature alignment (Venkataramanan et al., CVPR 2022, as OpenMixup's `alignmix` runs it;
docs/method.md#alignmix).

Two feature maps of a pair of images are treated as two sets of h·w points in channel space. An entropic
optimal transport plan between them (Sinkhorn in the log domain, uniform marginals) says which position of
one map matches which of the other; the partner's map is carried onto the image's own geometry by that plan
(times h·w, so each position receives a whole point) and then interpolated:

    mixed = lam * own + (1 - lam) * (P @ partner)        (direction 0: align the partner to the image)
    mixed = lam * (P^T @ own) + (1 - lam) * partner      (direction 1: align the image to the partner)

The label weights stay (lam, 1 - lam) either way. The plan carries no gradient.
"""

import dataclasses

import jax
import jax.numpy as jnp

from adamix_jax.options import Options, one_of, option, positive

STOP_TOLERANCE = 0.1  # The reference stops once the dual potentials move less than this (fixed there too).
ALTERNATES = ("manifoldmix", "mixup", "none")


def _at_least_one(value) -> str | None:
  return None if isinstance(value, int) and value >= 1 else "must be an integer >= 1"


@dataclasses.dataclass(frozen=True)
class AlignMixOptions(Options):
  """`config.alignmix`: the Sinkhorn plan's settings and the mixup AlignMix alternates with."""

  section = "alignmix"
  eps: float = option("eps", positive)  # Entropic regularisation of the transport plan.
  max_iter: int = option("max_iter", _at_least_one)  # Sinkhorn iterations at most.
  alternate: str = option("alternate", one_of(ALTERNATES))  # Drawn for half the steps; "none": AlignMix always.


def sinkhorn_plan(x: jax.Array, y: jax.Array, eps: float, max_iter: int) -> tuple[jax.Array, jax.Array]:
  """The entropic transport plan between point sets x [B, N, C] and y [B, M, C] with uniform marginals.

  The cost is the squared Euclidean distance. Log-domain Sinkhorn from zero potentials; it stops after
  `max_iter` iterations, or earlier once the potential u moves less than STOP_TOLERANCE (its absolute change
  summed over the points, averaged over the batch: one decision for the whole batch, as the reference's).
  Returns (plan [B, N, M] in float32, each row summing to about 1/N, the iterations run []).
  """
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  cost = jnp.sum(jnp.abs(x[:, :, None, :] - y[:, None, :, :]) ** 2, axis=-1)
  log_mu = jnp.log(1.0 / x.shape[1] + 1e-8)
  log_nu = jnp.log(1.0 / y.shape[1] + 1e-8)

  def scaled(u, v):
    return (-cost + u[:, :, None] + v[:, None, :]) / eps

  def body(carry):
    u, v, _, iterations = carry
    new_u = eps * (log_mu - jax.nn.logsumexp(scaled(u, v), axis=-1)) + u
    new_v = eps * (log_nu - jax.nn.logsumexp(scaled(new_u, v), axis=-2)) + v
    change = jnp.mean(jnp.sum(jnp.abs(new_u - u), axis=-1))
    return new_u, new_v, change, iterations + 1

  def running(carry):
    _, _, change, iterations = carry
    return (iterations < max_iter) & ~(change < STOP_TOLERANCE)

  # Derived from the cost, so that inside shard_map the carry varies over the mesh as the body's output does.
  u, v, change = jnp.zeros_like(cost[:, :, 0]), jnp.zeros_like(cost[:, 0, :]), jnp.full_like(cost[0, 0, 0], jnp.inf)
  u, v, _, iterations = jax.lax.while_loop(running, body, (u, v, change, jnp.int32(0)))
  return jnp.exp(scaled(u, v)), iterations


def align_mix(own: jax.Array, partner: jax.Array, lam: jax.Array, direction: jax.Array, eps: float, max_iter: int):
  """AlignMix of feature maps own and partner [B, h, w, C] with weight `lam` (scalar or [B]) on `own`'s label.

  `direction` (0 or 1, traced) picks which map is carried onto the other's geometry (module docstring).
  Returns the mixed maps [B, h, w, C] in the features' dtype; gradients flow through both maps, not the plan.
  """
  batch, height, width, channels = own.shape
  points = height * width
  own_points, partner_points = own.reshape(batch, points, channels), partner.reshape(batch, points, channels)
  plan, _ = sinkhorn_plan(jax.lax.stop_gradient(own_points), jax.lax.stop_gradient(partner_points), eps, max_iter)
  assignment = (plan * points).astype(own.dtype)  # [B, N own, N partner]
  lam = jnp.reshape(jnp.asarray(lam, own.dtype), (-1, 1, 1))
  partner_on_own = jnp.einsum("bij,bjc->bic", assignment, partner_points)
  own_on_partner = jnp.einsum("bij,bic->bjc", assignment, own_points)
  mixed = jnp.where(
    direction == 0,
    lam * own_points + (1 - lam) * partner_on_own,
    lam * own_on_partner + (1 - lam) * partner_points,
  )
  return mixed.reshape(own.shape)
