"""Static mixing operators: pure, jittable functions of a batch and a mixing plan.

A plan (`sample_plan`) holds the permutation that pairs each example with a partner, the drawn lambda and a
key for the operator's spatial randomness (box position, FMix spectrum). Each operator returns the mixed
batch with what the loss needs: the two source labels per example and their weights, and the per-pixel
weight of the unshuffled image (`masks`). For box and mask methods lambda is corrected to the real area.
Layouts follow OpenMixup (`openmixup/models/utils/augments/`); where they differ it says so.

    plan = sample_plan(key, batch_size=images.shape[0], alpha=1.0)
    mixed = cutmix(images, labels, plan)
    loss = losses.mixup_cross_entropy(logits, mixed.labels, mixed.lams)
"""

from typing import NamedTuple

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class MixPlan:
  """What one mixing draws.

  Attributes:
    permutation: int [B]; example b is mixed with example permutation[b].
    lam: float32 scalar, the drawn weight of the unshuffled batch (Beta(alpha, alpha)).
    key: PRNG key for the operator's spatial randomness.
  """

  permutation: jax.Array
  lam: jax.Array
  key: jax.Array


class MixResult(NamedTuple):
  """A mixed batch.

  Attributes:
    images: [B, H, W, C] mixed images (or features, for ManifoldMix).
    labels: int [K, B]: the sources' labels (K = 2 for the static mixups: the unshuffled and the partner).
    lams: float32 [K, B]: their weights, summing to 1 per example.
    masks: float32 [B, H, W, 1]: the per-pixel weight of the unshuffled image (static mixups), or
      [B, H, W, K]: each source's (the learned mixups).
  """

  images: jax.Array
  labels: jax.Array
  lams: jax.Array
  masks: jax.Array


def sample_plan(key: jax.Array, batch_size: int, alpha: float) -> MixPlan:
  """Draws a permutation (self-pairing allowed, as torch.randperm) and lambda ~ Beta(alpha, alpha)."""
  perm_key, lam_key, spatial_key = jax.random.split(key, 3)
  lam = jax.random.beta(lam_key, alpha, alpha).astype(jnp.float32)
  return MixPlan(jax.random.permutation(perm_key, batch_size), lam, spatial_key)


def _result(images, labels, plan: MixPlan, mask: jax.Array) -> MixResult:
  """Mixes with a per-pixel weight `mask` [B or 1, H, W, 1] of the unshuffled image; lambda = its mean."""
  mask = jnp.broadcast_to(mask.astype(jnp.float32), (images.shape[0], *images.shape[1:3], 1))
  mixed = mask * images + (1 - mask) * images[plan.permutation]
  lam = jnp.mean(mask, axis=(1, 2, 3))
  labels = jnp.stack([labels, labels[plan.permutation]])
  return MixResult(mixed.astype(images.dtype), labels, jnp.stack([lam, 1 - lam]), mask)


def mixup(images: jax.Array, labels: jax.Array, plan: MixPlan) -> MixResult:
  """MixUp: lam x + (1 - lam) x[perm] (works on any [B, ...] features, e.g. for ManifoldMix)."""
  lam = plan.lam.astype(jnp.float32)
  mixed = (lam * images + (1 - lam) * images[plan.permutation]).astype(images.dtype)
  lams = jnp.stack([jnp.full(images.shape[:1], lam), jnp.full(images.shape[:1], 1 - lam)])
  masks = jnp.full((images.shape[0], *images.shape[1:3], 1), lam)
  return MixResult(mixed, jnp.stack([labels, labels[plan.permutation]]), lams, masks)


def box_mask(height: int, width: int, top: jax.Array, left: jax.Array, bottom: jax.Array, right: jax.Array):
  """float32 [H, W, 1]: 1 inside rows [top, bottom) and columns [left, right), 0 outside."""
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  return inside[..., None].astype(jnp.float32)


def _cut_box(height: int, width: int, lam: jax.Array, center: jax.Array):
  """OpenMixup's `rand_bbox`: a box of sides int(side * sqrt(1 - lam)) around `center`, clipped to the image."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h, cut_w = (height * ratio).astype(jnp.int32), (width * ratio).astype(jnp.int32)
  top, bottom = jnp.clip(center[0] - cut_h // 2, 0, height), jnp.clip(center[0] + cut_h // 2, 0, height)
  left, right = jnp.clip(center[1] - cut_w // 2, 0, width), jnp.clip(center[1] + cut_w // 2, 0, width)
  return top, left, bottom, right


def cutmix(images: jax.Array, labels: jax.Array, plan: MixPlan) -> MixResult:
  """CutMix: one box of area about (1 - lam) HW, uniform centre, pasted from x[perm] into every image."""
  height, width = images.shape[1:3]
  center = jax.random.randint(plan.key, (2,), 0, jnp.array([height, width]))
  inside = box_mask(height, width, *_cut_box(height, width, plan.lam, center))
  return _result(images, labels, plan, 1 - inside[None])


def spectral_residual_saliency(image: jax.Array, size: int = 64) -> jax.Array:
  """Spectral-residual saliency (Hou & Zhang 2007; OpenCV's StaticSaliencySpectralResidual) of [H, W, C].

  The grey image is resized to size x size, its log-amplitude spectrum minus a 3x3 local mean is
  recombined with the phase, and the squared inverse transform is blurred (Gaussian, sigma 2.5) and
  resized back. Returns float32 [H, W]. OpenCV's exact blur differs; only the argmax is used.
  """
  height, width = image.shape[:2]
  grey = jax.image.resize(jnp.mean(image.astype(jnp.float32), axis=-1), (size, size), "linear")
  spectrum = jnp.fft.fft2(grey)
  log_amplitude = jnp.log(jnp.abs(spectrum) + 1e-8)
  residual = log_amplitude - _box3(log_amplitude)
  saliency = jnp.abs(jnp.fft.ifft2(jnp.exp(residual + 1j * jnp.angle(spectrum)))) ** 2
  taps = jnp.exp(-0.5 * (jnp.arange(-4, 5) / 2.5) ** 2)
  kernel = jnp.outer(taps, taps) / jnp.sum(taps) ** 2
  saliency = jax.scipy.signal.convolve2d(saliency, kernel, mode="same")
  return jax.image.resize(saliency, (height, width), "linear")


def _box3(x: jax.Array) -> jax.Array:
  """3x3 mean with edge replication."""
  padded = jnp.pad(x, 1, mode="edge")
  rows, cols = x.shape
  return sum(padded[i : i + rows, j : j + cols] for i in range(3) for j in range(3)) / 9


def saliencymix(images: jax.Array, labels: jax.Array, plan: MixPlan) -> MixResult:
  """SaliencyMix: the CutMix box centred on the saliency peak of the first shuffled image (as OpenMixup)."""
  height, width = images.shape[1:3]
  saliency = spectral_residual_saliency(images[plan.permutation[0]])
  peak = jnp.argmax(saliency)
  center = jnp.stack([peak // width, peak % width])
  inside = box_mask(height, width, *_cut_box(height, width, plan.lam, center))
  return _result(images, labels, plan, 1 - inside[None])


def resizemix(
  images: jax.Array, labels: jax.Array, plan: MixPlan, scope: tuple[float, float] = (0.1, 0.8)
) -> MixResult:
  """ResizeMix: x[perm] shrunk by tau (nearest) and pasted at a uniform position.

  tau = scope[0] + lam (scope[1] - scope[0]), i.e. uniform on `scope` for alpha = 1 (OpenMixup's default
  draws tau uniformly; `use_alpha` draws it from Beta as here). The pasted box is int(H tau) x int(W tau).
  """
  height, width = images.shape[1:3]
  tau = scope[0] + plan.lam * (scope[1] - scope[0])
  box_h, box_w = (height * tau).astype(jnp.int32), (width * tau).astype(jnp.int32)
  top_key, left_key = jax.random.split(plan.key)
  top = jax.random.randint(top_key, (), 0, height - box_h + 1)
  left = jax.random.randint(left_key, (), 0, width - box_w + 1)
  inside = box_mask(height, width, top, left, top + box_h, left + box_w)
  # Nearest-neighbour resize as PyTorch: output pixel i reads floor(i * in / out).
  src_rows = jnp.clip(((jnp.arange(height) - top) * height) // jnp.maximum(box_h, 1), 0, height - 1)
  src_cols = jnp.clip(((jnp.arange(width) - left) * width) // jnp.maximum(box_w, 1), 0, width - 1)
  shrunk = images[plan.permutation][:, src_rows][:, :, src_cols]
  mixed = inside * shrunk + (1 - inside) * images
  lam = jnp.full(images.shape[:1], 1 - jnp.mean(inside))
  labels = jnp.stack([labels, labels[plan.permutation]])
  masks = jnp.broadcast_to(1 - inside, (images.shape[0], height, width, 1))
  return MixResult(mixed.astype(images.dtype), labels, jnp.stack([lam, 1 - lam]), masks)


def fmix_mask(key: jax.Array, lam: jax.Array, height: int, width: int, decay_power: float = 3.0) -> jax.Array:
  """FMix's binary mask [H, W, 1]: the round(lam HW) largest pixels of a low-frequency random image.

  The image is the inverse real FFT of complex Gaussian noise scaled by 1 / max(f, 1 / max(H, W))**decay.
  (The reference implementation rounds the pixel count up or down at random; here it is rounded.)
  """
  freqs = jnp.sqrt(jnp.fft.fftfreq(height)[:, None] ** 2 + jnp.fft.rfftfreq(width)[None, :] ** 2)
  scale = 1.0 / jnp.maximum(freqs, 1.0 / max(height, width)) ** decay_power
  noise = jax.random.normal(key, (2, *freqs.shape))
  grey = jnp.fft.irfft2(scale * (noise[0] + 1j * noise[1]), s=(height, width))
  ranks = jnp.argsort(jnp.argsort(-grey.reshape(-1)))
  keep = jnp.round(lam * height * width).astype(jnp.int32)
  return (ranks < keep).reshape(height, width, 1).astype(jnp.float32)


def fmix(images: jax.Array, labels: jax.Array, plan: MixPlan, decay_power: float = 3.0) -> MixResult:
  """FMix: one Fourier-sampled binary mask for the batch; the unshuffled image keeps the mask's pixels."""
  mask = fmix_mask(plan.key, plan.lam, *images.shape[1:3], decay_power=decay_power)
  return _result(images, labels, plan, mask[None])


def _slice_cover(size: int, starts: jax.Array, stops: jax.Array, valid: jax.Array) -> jax.Array:
  """bool [size]: positions inside any valid [start, stop), read as Python reads x[start:stop] on a length
  `size` axis (a negative bound counts from the end, then both are clipped to [0, size])."""

  def python_bound(bound):
    return jnp.clip(jnp.where(bound < 0, bound + size, bound), 0, size)

  positions = jnp.arange(size)[None, :]
  inside = (positions >= python_bound(starts)[:, None]) & (positions < python_bound(stops)[:, None])
  return jnp.any(valid[:, None] & inside, axis=0)


def _require_square(images: jax.Array, method: str) -> None:
  if images.shape[1] != images.shape[2]:
    height, width = images.shape[1:3]
    raise ValueError(f"{method} mixes square images (as OpenMixup does); these are {height}x{width}.")


def grid_mask(
  size: int,
  lam: jax.Array,
  n_holes: jax.Array,
  hole_aspect_ratio: jax.Array,
  cut_area_ratio: jax.Array,
  cut_aspect_ratio: jax.Array,
  corner: jax.Array,
) -> jax.Array:
  """GridMix's mask [size, size]: 1 in the holes (where the partner shows), 0 elsewhere (OpenMixup's
  `rand_grid`, integer arithmetic as its Python `int`, `ceil`, `min`).

  A cut of area int(size^2 cut_area_ratio) and aspect cut_aspect_ratio, its corner at
  int((size - side) * corner) (may be negative: the cut can be wider than the image), is tiled by
  n_holes patches across (side ceil(cut_w / n_holes), height * hole_aspect_ratio); each patch has a hole
  of sides int(patch * sqrt(1 - lam)), clipped to [1, patch - 1], at its top-left. As in the reference,
  a hole that starts left of or above the image is a Python slice with a negative start: it counts from
  the far edge (or is empty).

  Args:
    size: the square image's side.
    lam, n_holes, hole_aspect_ratio, cut_area_ratio, cut_aspect_ratio: scalars (n_holes an integer).
    corner: [2] uniform draws in [0, 1): (columns, rows) of the cut's corner.
  """
  f32 = jnp.float32
  cut_area = jnp.floor(f32(size * size) * cut_area_ratio)
  cut_w = jnp.floor(jnp.sqrt(cut_area / cut_aspect_ratio))
  cut_h = jnp.floor(cut_w * cut_aspect_ratio)
  left, top = jnp.trunc((size - cut_w) * corner[0]), jnp.trunc((size - cut_h) * corner[1])
  patch_w = jnp.ceil(cut_w / n_holes)
  patch_h = jnp.maximum(jnp.floor(patch_w * hole_aspect_ratio), 1.0)
  rows_of_patches = jnp.ceil(cut_h / patch_h)
  ratio = jnp.sqrt(1.0 - lam)
  hole_w = jnp.clip(jnp.floor(patch_w * ratio), 1, patch_w - 1)
  hole_h = jnp.clip(jnp.floor(patch_h * ratio), 1, patch_h - 1)
  index = jnp.arange(2 * size + 2, dtype=f32)  # More than either count of patches can be.
  x1 = jnp.minimum(patch_w * index, cut_w)
  y1 = jnp.minimum(patch_h * index, cut_h)
  x2, y2 = jnp.minimum(x1 + hole_w, cut_w), jnp.minimum(y1 + hole_h, cut_h)
  cols = _slice_cover(size, (left + x1).astype(jnp.int32), (left + x2).astype(jnp.int32), index <= n_holes)
  rows = _slice_cover(size, (top + y1).astype(jnp.int32), (top + y2).astype(jnp.int32), index <= rows_of_patches)
  return (rows[:, None] & cols[None, :]).astype(f32)


def gridmix(
  images: jax.Array,
  labels: jax.Array,
  plan: MixPlan,
  n_holes: tuple[int, int] = (2, 6),
  hole_aspect_ratio: tuple[float, float] = (1.0, 1.0),
  cut_area_ratio: tuple[float, float] = (0.5, 1.0),
  cut_aspect_ratio: tuple[float, float] = (0.5, 2.0),
) -> MixResult:
  """GridMix (Baek et al., Pattern Recognition 2021, as OpenMixup runs it): one grid of holes for the batch
  (`grid_mask`), the partner in the holes; lambda is the real share of the unshuffled image. The counts and
  ratios are drawn per step uniformly from their ranges (n_holes: an integer, both ends included)."""
  _require_square(images, "GridMix")
  holes_key, hole_key, area_key, aspect_key, corner_key = jax.random.split(plan.key, 5)
  mask = grid_mask(
    images.shape[1],
    plan.lam,
    jax.random.randint(holes_key, (), n_holes[0], n_holes[1] + 1).astype(jnp.float32),
    jax.random.uniform(hole_key, (), minval=hole_aspect_ratio[0], maxval=hole_aspect_ratio[1]),
    jax.random.uniform(area_key, (), minval=cut_area_ratio[0], maxval=cut_area_ratio[1]),
    jax.random.uniform(aspect_key, (), minval=cut_aspect_ratio[0], maxval=cut_aspect_ratio[1]),
    jax.random.uniform(corner_key, (2,)),
  )
  return _result(images, labels, plan, (1 - mask)[None, ..., None])


SMOOTHMIX_LAMS = ("reference", "area")


def smooth_mask(size: int, row_shift: jax.Array, col_shift: jax.Array, sigma: jax.Array) -> jax.Array:
  """SmoothMix's Gaussian [size, size] (peak 1): the partner's per-pixel weight (OpenMixup's
  `gaussian_kernel` on a 2*size grid, rolled by the shifts and cropped to the central size x size)."""
  centre = size - 0.5  # (2 size - 1) / 2, the mean of the 2*size grid.
  index = jnp.arange(size)
  cols = (index + size // 2 - col_shift) % (2 * size) - centre
  rows = (index + size // 2 - row_shift) % (2 * size) - centre
  return jnp.exp(-(rows[:, None] ** 2 + cols[None, :] ** 2) / (2 * sigma**2)).astype(jnp.float32)


def smoothmix(images: jax.Array, labels: jax.Array, plan: MixPlan, lam_of: str = "reference") -> MixResult:
  """SmoothMix (Lee et al., CVPRW 2020, as OpenMixup runs it): the partner blended in through one Gaussian
  blob for the batch, centred at an integer offset in [-size/2, size/2) from the middle along each axis,
  of sigma uniform in [size/4, size/2). The drawn lambda is not used.

  lam_of: "reference" gives the unshuffled image's label the *blob's* mean weight, mean(G), as OpenMixup
    does (the label weights are then those of the other image's pixels); "area" gives it its own pixels'
    share, 1 - mean(G), as every other mask method here does.
  """
  _require_square(images, "SmoothMix")
  size = images.shape[1]
  col_key, row_key, sigma_key = jax.random.split(plan.key, 3)
  col_shift = jnp.trunc(jax.random.randint(col_key, (), 0, size) - size / 2)
  row_shift = jnp.trunc(jax.random.randint(row_key, (), 0, size) - size / 2)
  sigma = (jax.random.uniform(sigma_key, ()) / 4 + 0.25) * size
  blob = smooth_mask(size, row_shift, col_shift, sigma)
  mixed = _result(images, labels, plan, (1 - blob)[None, ..., None])
  if lam_of == "area":
    return mixed
  lam = jnp.full(images.shape[:1], jnp.mean(blob))
  return mixed._replace(lams=jnp.stack([lam, 1 - lam]))


OPERATORS = {
  "mixup": mixup, "cutmix": cutmix, "fmix": fmix, "resizemix": resizemix, "saliencymix": saliencymix,
  "gridmix": gridmix, "smoothmix": smoothmix,
}  # fmt: skip


def mix(images: jax.Array, perms: jax.Array, masks: jax.Array) -> jax.Array:
  """sum_i masks[..., i] * images[perms[i]]: images [B, H, W, C], perms [N, B], masks [B, H, W, N] or [N].

  The N-image mixing of the learned mixups (AdAutoMix, AutoMix); the static operators above mix two.
  """
  sources = images[perms]  # [N, B, H, W, C]
  weights = jnp.moveaxis(masks, -1, 0)[..., None] if masks.ndim == 4 else masks[:, None, None, None, None]
  return jnp.sum(weights * sources, axis=0).astype(images.dtype)


def mix_sources(images: jax.Array, labels: jax.Array, perms: jax.Array, lams: jax.Array, masks: jax.Array) -> MixResult:
  """The MixResult of `mix`: labels [B], perms [N, B], lams [N] (one weight per source), masks [B, H, W, N]."""
  per_example = jnp.broadcast_to(lams[:, None], perms.shape)
  return MixResult(mix(images, perms, masks), labels[perms], per_example, masks)


def mask_spatial_std(masks: jax.Array) -> jax.Array:
  """How much structure masks [B, H, W, K] have: the standard deviation of each mask over its pixels,
  averaged over the B images and K sources. 0 for constant masks (vanilla mixup); a CutMix box of area
  lam has sqrt(lam (1 - lam)) (0.5 at lam = 0.5)."""
  return jnp.mean(jnp.std(jnp.asarray(masks, jnp.float32), axis=(1, 2)))
