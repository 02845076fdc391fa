"""Semi-supervised CIFAR-100 with WRN-28-8: DMixMatch and its FixMatch baseline, at 400, 2,500 or 10,000 labels.

    python -m adamix_jax.main --config configs/cifar100_semisup.py:dmixmatch_2500 --workdir runs/ssl_dmixmatch_2500
    python -m adamix_jax.main --config configs/cifar100_semisup.py:fixmatch_2500 --workdir runs/ssl_fixmatch_2500

The recipe is OpenMixup's `configs/semisup/dmixmatch/cifar100/wrn28_8/` (docs/method.md#semi-supervised-learning):
  - labels: `num_labeled` class-balanced from the seed (WORKDIR/labeled_indices.json); the unlabeled pool is
    the whole training split; a step reads 64 labeled and 7 x 64 = 448 unlabeled images;
  - views: labeled images reflect-pad-4 crop and flip; the weak view pad 2 (pad 4 at 10,000 labels, as the
    reference's 10k data config); the strong view pad 4, RandAugment (3 of the 14 FixMatch operations, full
    magnitude) and a 4 x 4 Cutout of (125, 123, 114) with probability 0.5;
  - WRN-28-8 with head_one and head_mix; the EMA teacher (0.999 -> 0.99999, cosine after 10% of training)
    gives the pseudo-labels (confidence >= 0.95) and is the evaluated network;
  - SGD lr 0.03, momentum 0.9, weight decay 1e-3 on kernels only (none on BatchNorm and biases), cosine by
    epoch to 0.2 x lr; 800 epochs of 111 steps (88,800 iterations);
  - DMixMatch: Decoupled Mixup (eta 1, "both", lambda power 1) on head_mix for MixUp (alpha 1) within the
    labeled batch and for labeled x unlabeled mixes, the latter ramped in as the reference's compounding
    schedule does (`semisup.mix_ramp`).
`fixmatch_*` is this recipe with the two mixup terms off: the comparison DMixMatch is measured against.

Expected top-1 (%, 400 / 2,500 / 10,000 labels): FixMatch's own paper reports 51.15 / 71.71 / 77.40 with
its own recipe (2^20 iterations, pseudo-labels from the online network), TorchSSL 53.58 / 71.97 / 77.80.
The DM paper's semi-supervised numbers (DMixMatch) could not be read from any source available to us; we
do not guess them. None of these configs has been run to the end here (88,800 WRN-28-8 steps need a GPU).
"""

from adamix_jax.config import base_config

METHODS = ("fixmatch", "dmixmatch")
LABELS = (400, 2500, 10000)


def get_config(variant: str = "dmixmatch_2500"):
  method, _, labels = variant.partition("_")
  if method not in METHODS or not labels.isdigit() or int(labels) not in LABELS:
    valid = [f"{m}_{n}" for m in METHODS for n in LABELS]
    raise ValueError(f"Unknown variant {variant!r}. Valid choices: {', '.join(valid)}.")
  config = base_config()
  config.method = method
  config.data.name = "cifar100"
  config.model.name = "wrn28_8"
  config.semisup.num_labeled = int(labels)
  config.semisup.unlabeled_ratio = 7
  config.semisup.weak_crop_padding = 4 if int(labels) == 10000 else 2
  config.batch_size = 64
  config.num_epochs = 800
  config.eval_batch_size = 500
  config.optimizer.lr = 0.03
  config.optimizer.min_lr = 0.03 * 0.2
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 1e-3
  config.optimizer.decay_norm_and_bias = False
  config.ema.momentum = 0.999
  config.ema.end_momentum = 0.99999
  config.ema.adjust_start = 0.1
  config.mixup.alpha = 1.0
  if method == "dmixmatch":
    config.loss.dm.eta = 1.0
    config.loss.dm.mode = "both"
    config.loss.dm.lam_power = 1.0
  config.eval.every_epochs = 5  # The reference evaluates every 5 epochs.
  return config
