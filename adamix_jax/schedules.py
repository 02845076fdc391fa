"""Schedules as pure functions of the step, so a resumed run continues exactly where it stopped."""

import jax.numpy as jnp


def cosine_per_epoch(base: float, floor: float, steps_per_epoch: int, num_epochs: int):
  """mmcv's `CosineAnnealing` by epoch: lr_e = floor + (base - floor) (1 + cos(pi e / E)) / 2.

  Returns:
    A function step -> learning rate, constant within an epoch (e = step // steps_per_epoch).
  """

  def schedule(step):
    epoch = jnp.asarray(step) // steps_per_epoch
    return floor + (base - floor) * (1 + jnp.cos(jnp.pi * epoch / num_epochs)) / 2

  return schedule


def ema_rate(step, total_steps: int, base: float, end: float, adjust_start: float):
  """The EMA teacher's update rate 1 - m at iteration `step` (OpenMixup `CosineScheduleHook`,
  docs/method.md#the-ema-teacher).

  The momentum m is `base` until `adjust_start * total_steps`, then end - (end - base) (cos(pi t / T) + 1) / 2.
  Note t / T, not (t - start) / (T - start): m jumps at the start of the adjustment, as in the original.
  The rate is computed from the complements (1 - end, 1 - base) so it keeps its precision in float32 when m is
  close to 1 (PyTorch passes alpha = 1 - m in double precision).
  """
  step = jnp.asarray(step, jnp.float32)
  cosine = (1 - end) + (end - base) * (jnp.cos(jnp.pi * step / total_steps) + 1) / 2
  return jnp.where(step < adjust_start * total_steps, jnp.float32(1 - base), cosine)
