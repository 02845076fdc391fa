"""CIFAR-100, CIFAR ResNet-18 (or ResNeXt-50): AdAutoMix by default, ERM and the static mixups as variants.

    python -m adamix_jax.main --config configs/cifar100.py --workdir runs/c100_r18_adautomix
    python -m adamix_jax.main --config configs/cifar100.py:rx50 --workdir runs/c100_rx50_adautomix
    python -m adamix_jax.main --config configs/cifar100.py:cutmix,e400 --workdir runs/c100_r18_cutmix
    python -m adamix_jax.main --config configs/cifar100.py:smoke --workdir /tmp/c100_smoke

Data: random crop 32 with 4-pixel reflect padding, horizontal flip, per-channel normalisation; batch 100
on one device as in the paper (the batch is split over the devices of the mesh; `--config.num_devices=1`
reproduces the single-GPU run exactly). The data comes from tfds ('cifar100'): downloaded and prepared on
first use where there is internet; offline the run stops at once and says how to prepare it.

AdAutoMix (docs/method.md#adautomix, the released `r18_adautomix_bilinear.py` with the 800 epochs of its log): SGD
momentum 0.9, weight decay 1e-4, lr 0.1 cosine per epoch to 0.05 for the classifier and the generator;
N = 3, beta 0.3, alpha 1, lam_margin 0.03, mixup_ratio 0.5, bilinear x4 masks from stage 3, no lambda
channel; EMA teacher 0.999 -> 0.999999 from 10% of training. Reported: the EMA one-hot head, median top-1
of the last 10 epochs. Expected (docs/method.md#expected-numbers), 200 / 400 / 800 epochs: R18 81.55 / 81.97 / 82.32,
RX50 84.40 / 84.05 / 84.22. The online classifier ends near 75% (its lr never goes below 0.05).
AutoMix (`:automix`, docs/method.md#automix): alpha 2, lam_margin 0.08, mask loss 0.1, nearest masks, lr 0.1 -> 0.05;
expected R18 80.12 / 81.78 / 82.04, RX50 82.84 / 83.32 / 83.64.
SAMix (`:samix`, docs/method.md#samix; OpenMixup's `r18_l2_a2_bili_val_dp0_mul_x_cat_L1_var_01_mlr5e_2` and its
800-epoch `..._lam_mul_k0_25_mask_adjust0_25_ep800`): AutoMix's settings with SAMix's Mix Block (lambda
rescaling k 0.25, non-linear value, concatenated query and key), the L1+Variance mask loss, bilinear masks and
mask_adjust 0.25 (0 for RX50, as its released config); expected R18 81.21 / 81.97 / 82.30, RX50 83.81 / 84.27
/ 84.42.

ERM and the static mixups: lr 0.1 cosine to 0, reported on the online network. Expected (OpenMixup
benchmark, same protocol), 200 / 400 / 800 epochs: ERM 76.42 / 77.73 / 78.04; MixUp 78.52 / 79.34 / 79.12;
CutMix 79.45 / 79.58 / 78.17; FMix 78.91 / 79.91 / 79.69; ResizeMix 79.56 / 79.19 / 80.01; SaliencyMix
79.75 / 79.64 / 79.12; GridMix 78.23 / 78.60 / 78.72; SmoothMix 77.90 / 78.77 / 78.69; ManifoldMix 79.18 / 80.18 /
80.35; PuzzleMix 79.96 / 80.82 / 81.13 (RX50 values in docs/method.md#expected-numbers).
PuzzleMix (`:puzzlemix`, docs/method.md#puzzlemix; OpenMixup's `r18_puzzlemix_CE_soft.py`): alpha 1, masks of
2, 4 or 8 blocks a side with values {0, 0.5, 1} by graph cut, optimal transport, saliency from the input
gradient (config.puzzlemix).
Co-Mixup (`:comixup`, docs/method.md#co-mixup; the authors' code, github.com/snu-mllab/Co-Mixup): alpha 2 (the
Dirichlet prior's), each group of 20 images mixed jointly into 20 outputs on 4x4 block grids (config.comixup),
the authors' loss (binary cross-entropy of the softmax, plus the clean batch's cross-entropy x 2 / 100), on this
file's protocol (the authors train a PreActResNet-18 300 epochs at lr 0.2, steps at 100 and 200). Published
(OpenMixup's table, from the authors' implementation): R18 80.01 / 80.87 / 81.17, RX50 81.73 / 82.88 / 82.91.
AlignMix (`:alignmix`, docs/method.md#alignmix; OpenMixup's `r18_alignmix_CE_none.py`): alpha 2; each step
either AlignMix of the last feature maps (Sinkhorn plan, eps 0.1, at most 100 iterations) or ManifoldMix,
drawn with equal chances (config.alignmix). Published (OpenMixup, the authors' implementation): R18 81.71 at
1,200 epochs (`:alignmix,e1200`); no 200-800 epoch numbers.
AttentiveMix+ (`:attentivemix`, docs/method.md#attentivemix; OpenMixup's `r18_attentivemix_CE_none.py`): alpha 2;
each image keeps the floor(49 lam) cells of a 7x7 grid that an ImageNet-pretrained ResNet-18 attends to most
(images resized to 224 for it) and takes the rest from its partner. The network is not downloaded: convert
torchvision's weights once (adamix_jax/models/pretrained.py) and add
`--config.attentivemix.pretrained=resnet18.npz`. Expected R18 79.62 / 80.14 / 78.91, RX50 81.69 / 81.53 / 80.54.
Add the DM loss with `--config.loss.dm.eta=0.1` (configs/cifar100_dm.py holds the official per-method DM
settings).

Variants (`configs/cifar100.py:VARIANT[,VARIANT...]`):
  adautomix (default), automix (alpha 2, nearest masks), samix (alpha 2), erm, mixup (alpha 1), cutmix (0.2),
  fmix (0.2), resizemix (1), saliencymix (0.2), gridmix (0.2), smoothmix (0.2), manifoldmix (2), puzzlemix (1),
  comixup (2), alignmix (2), attentivemix (2): the method, with OpenMixup's benchmark alphas.
  r18 (default), rx50: the backbone.
  e200, e400, e800 (default), e1200: epochs.
  smoke: 1 epoch on 1,000 training and 1,000 test images at width 16, to check a setup.
"""

from adamix_jax.config import base_config

METHOD_ALPHA = {
  "adautomix": 1.0, "automix": 2.0, "samix": 2.0, "erm": 1.0, "mixup": 1.0, "cutmix": 0.2, "fmix": 0.2,
  "resizemix": 1.0, "saliencymix": 0.2, "gridmix": 0.2, "smoothmix": 0.2, "manifoldmix": 2.0, "puzzlemix": 1.0,
  "comixup": 2.0, "alignmix": 2.0, "attentivemix": 2.0,
}  # fmt: skip
BACKBONES = {"r18": "cifar_resnet18", "rx50": "cifar_resnext50_32x4d"}
LENGTHS = {"e200": 200, "e400": 400, "e800": 800, "e1200": 1200}


def get_config(variants: str = "adautomix"):
  config = base_config()
  config.data.name = "cifar100"
  config.model.name = "cifar_resnet18"
  config.method = "adautomix"
  config.num_epochs = 800
  config.batch_size = 100
  config.optimizer.lr = 0.1
  config.optimizer.weight_decay = 1e-4
  config.eval.median_of_last = 10
  for variant in filter(None, variants.split(",")):
    if variant in METHOD_ALPHA:
      config.method = variant
      config.mixup.alpha = METHOD_ALPHA[variant]
    elif variant in BACKBONES:
      config.model.name = BACKBONES[variant]
    elif variant in LENGTHS:
      config.num_epochs = LENGTHS[variant]
    elif variant == "smoke":
      config.num_epochs = 1
      config.model.width = 16
      config.data.max_train_examples = 1000
      config.data.max_eval_examples = 1000
    else:
      valid = ", ".join([*METHOD_ALPHA, *BACKBONES, *LENGTHS, "smoke"])
      raise ValueError(f"Unknown variant {variant!r} of configs/cifar100.py. Valid choices: {valid}.")
  # The learned mixups never anneal below 0.05 (A.7, section C); the others anneal to 0.
  config.optimizer.min_lr = 0.05 if config.method in ("adautomix", "automix", "samix") else 0.0
  if config.method == "automix":  # Nearest x4 masks from stage 3 (OpenMixup's CIFAR AutoMix).
    config.generator.upsample_mode = "nearest"
  if config.method == "samix" and config.model.name == BACKBONES["rx50"]:
    config.samix.mask_adjust = 0.0  # OpenMixup's RX50 SAMix config; its R18 800-epoch one has 0.25.
  return config
