"""A numpy transcription of OpenMixup's Decoupled Mixup loss, the oracle of `official_pairing`'s tests.

It follows `soft_mix_cross_entropy` (openmixup/models/losses/cross_entropy_loss.py) and the η weights of
`ClsMixupHead.loss` (openmixup/models/heads/cls_mixup_head.py) at commit 37e1372, step by step, for a scalar
λ, no label smoothing and no class weights: the one-hot rows are set aside first; the mixed classes and
their order come from the first remaining row; each η goes to the class whose target equals that row's
value. `tests/test_losses.py` first checks it against the official values in tests/golden/ (made by the
official code itself), then holds `decoupled_mixup_loss(official_pairing=True)` to it on batches the golden
file lacks.
"""

import numpy as np

EPS = 1e-3  # max(1e-3, eps_smooth) without label smoothing


def _log_softmax(x: np.ndarray) -> np.ndarray:
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def eta_weights(lam: float, eta: float, mode: str, lam_power: float, threshold: float) -> list[float]:
  """ClsMixupHead.loss's use_eta_weight for a scalar lam ('pow' scaling, lam_thr = 1)."""
  below = lam < threshold
  chosen = {"less": [lam, 0] if below else [0, 1 - lam], "more": [lam, 0] if not below else [0, 1 - lam]}
  weights = chosen.get(mode, [lam, 1 - lam])
  return [eta * (1.0 if u >= 1 else u ** abs(lam_power)) if u > 0 else 0.0 for u in weights]


def soft_mix_cross_entropy(logits, y_a, y_b, lam: float, eta_weight: list[float], weight=None) -> float:
  """The official loss of logits [B, C] against lam * onehot(y_a) + (1 - lam) * onehot(y_b), sum / B."""
  logits = np.asarray(logits, np.float64)
  batch, classes = logits.shape
  label = lam * np.eye(classes)[y_a] + (1 - lam) * np.eye(classes)[y_b]
  weight = np.ones(batch) if weight is None else np.asarray(weight, np.float64)
  hot = (label > EPS).sum(axis=-1)
  mixed = hot >= hot.max()
  pred, target, w = logits[mixed], label[mixed], weight[mixed]
  loss = -(target * _log_softmax(pred)).sum(axis=-1)
  lam_k = target[0, target[0] > EPS]
  if len(set(lam_k.tolist())) == lam_k.size and lam_k.size > 1:
    in_mix = target > EPS
    for i in range(lam_k.size):
      keep = (target == lam_k[i]) | ~in_mix
      kept_pred = pred[keep].reshape(len(pred), classes + 1 - lam_k.size)
      kept_target = (target[keep].reshape(len(pred), -1) > 0).astype(np.float64)
      loss = loss + eta_weight[i] * -(kept_target * _log_softmax(kept_pred)).sum(axis=-1)
  total = (w * loss).sum() / batch
  if (~mixed).any():
    total += (weight[~mixed] * -(label[~mixed] * _log_softmax(logits[~mixed])).sum(axis=-1)).sum() / batch
  return float(total)
