"""ImageNet-1k, ResNet-18 / 34 / 50 at 224x224: AdAutoMix as officially trained (N = 2, lambda channel).

    python -m adamix_jax.main --config configs/imagenet.py:r18 --workdir runs/in1k_r18_adautomix
    python -m adamix_jax.main --config configs/imagenet.py:r50 --workdir runs/in1k_r50_adautomix
    python -m adamix_jax.main --config configs/imagenet.py:r18,smoke --workdir /tmp/in1k_smoke

Data: tfds 'imagenet2012', prepared once from the manually downloaded archives (the run says how when it
is missing; on a TPU pod prepare it into a bucket and set TFDS_DATA_DIR=gs://...). Training:
RandomResizedCrop 224 (bilinear) and a horizontal flip; evaluation: shorter side 256, centre crop 224;
ImageNet mean/std. Images are decoded after shuffling (only the crop of a JPEG is decoded) and not cached.

AdAutoMix (docs/method.md#adautomix): 100 epochs, batch 256 (the official 4 GPUs x 64 with per-GPU BatchNorm:
`--config.num_devices=4` on one host gives the same BN batches), SGD momentum 0.9, weight decay 1e-4,
lr 0.1 -> 0, generator lr 0.1 -> 0.001; N = 2, beta 0.1, alpha 1, lam_margin 0.03, the generator reads
stage 3 (14x14) with lambda appended as a channel and upsamples x16 bilinearly; ResNet-50 adds BatchNorm
after the generator's q/k projections; EMA 0.999 -> 0.99999.
Expected top-1 (docs/method.md#expected-numbers, EMA one-hot head): R18 70.86%, R34 74.82%, R50 78.04%.
Variants: r18 (default), r34, r50; smoke (1 epoch on 2,560 training and 1,000 validation images, width 16).
"""

from adamix_jax.config import base_config, random_resized_crop_recipe

BACKBONES = {"r18": "resnet18", "r34": "resnet34", "r50": "resnet50"}


def get_config(variants: str = "r18"):
  config = base_config()
  config.method = "adautomix"
  config.data.name = "imagenet2012"
  random_resized_crop_recipe(config, image_size=224, eval_resize=256)
  config.num_epochs = 100
  config.batch_size = 256
  config.eval_batch_size = 1000
  config.optimizer.lr, config.optimizer.min_lr, config.optimizer.weight_decay = 0.1, 0.0, 1e-4
  config.optimizer.generator.lr, config.optimizer.generator.min_lr = 0.1, 1e-3
  config.adautomix.num_mix = 2
  config.adautomix.beta = 0.1
  config.adautomix.lam_margin = 0.03
  config.generator.lam_concat = True
  config.ema.end_momentum = 0.99999
  config.model.name = "resnet18"
  for variant in filter(None, variants.split(",")):
    if variant in BACKBONES:
      config.model.name = BACKBONES[variant]
    elif variant == "smoke":
      config.num_epochs, config.model.width = 1, 16
      config.data.max_train_examples, config.data.max_eval_examples = 2560, 1000
    else:
      raise ValueError(f"Unknown variant {variant!r} of configs/imagenet.py. Valid choices: r18, r34, r50, smoke.")
  config.generator.attention_norm = config.model.name == "resnet50"  # Only the official R50 config sets it.
  return config
