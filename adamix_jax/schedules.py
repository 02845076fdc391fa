"""Schedules as pure functions of the step, so a resumed run continues exactly where it stopped."""

import jax.numpy as jnp
import numpy as np

MIX_RAMPS = ("compound", "cosine")


def cosine_per_epoch(base: float, floor: float, steps_per_epoch: int, num_epochs: int):
  """mmcv's `CosineAnnealing` by epoch: lr_e = floor + (base - floor) (1 + cos(pi e / E)) / 2.

  Returns:
    A function step -> learning rate, constant within an epoch (e = step // steps_per_epoch).
  """

  def schedule(step):
    epoch = jnp.asarray(step) // steps_per_epoch
    return floor + (base - floor) * (1 + jnp.cos(jnp.pi * epoch / num_epochs)) / 2

  return schedule


def cosine_per_step(base: float, floor: float, total_steps: int, warmup_steps: int = 0, warmup_ratio: float = 1e-5):
  """mmcv's `CosineAnnealing` by iteration with its linear warm-up (`warmup='linear'`).

  lr_t = floor + (base - floor) (1 + cos(pi t / T)) / 2, and during the first `warmup_steps` that value
  times 1 - (1 - t / warmup_steps)(1 - warmup_ratio): from `warmup_ratio` of it at t = 0 up to all of it.
  """

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    lr = floor + (base - floor) * (1 + jnp.cos(jnp.pi * step / total_steps)) / 2
    if warmup_steps == 0:
      return lr
    # 1 - (1 - t / w)(1 - r), written as r + (1 - r) t / w so that float32 keeps r's precision at t = 0.
    factor = warmup_ratio + (1 - warmup_ratio) * step / warmup_steps
    return jnp.where(step < warmup_steps, lr * factor, lr)

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


def mix_ramp(total_steps: int, mode: str = "compound"):
  """DMixMatch's weight of the labeled x unlabeled mixup term, rising from 0 to 1 (docs/method.md#dmixmatch).

  "compound" is the reference code's: its hook anneals a value a by a_t = a_{t-1} (1 + cos(pi t / T)) / 2 from
  a_{-1} = 1 (each iteration re-anneals the previous value), and the weight is 1 - a_t. The product falls
  fast: the weight passes 0.5 after about 2% of training. "cosine" is the plain (1 - cos(pi t / T)) / 2.

  Returns:
    A function step -> weight (float32), from a table of the T values computed in float64.
  """
  if mode not in MIX_RAMPS:
    raise ValueError(f"mode = {mode!r} is not known. Valid choices: {', '.join(MIX_RAMPS)}.")
  steps = np.arange(total_steps, dtype=np.float64)
  factors = (1 + np.cos(np.pi * steps / total_steps)) / 2
  table = 1 - (np.cumprod(factors) if mode == "compound" else factors)
  table = jnp.asarray(np.clip(table, 0.0, 1.0), jnp.float32)

  def schedule(step):
    return table[jnp.clip(jnp.asarray(step), 0, total_steps - 1)]

  return schedule
