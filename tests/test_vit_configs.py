"""configs/cifar100_vit.py: the transformer recipe's official values, every variant valid, clear refusals."""

import importlib
import os
import sys

import pytest

from adamix_jax.validation import validate

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
sys.path.insert(0, CONFIGS)
cifar100_vit = importlib.import_module("cifar100_vit")
sys.path.remove(CONFIGS)


def _settings(config):
  o = config.optimizer
  return dict(
    model=config.model.name, lr=o.lr, min_lr=o.min_lr, warmup=o.warmup_epochs, clip=o.grad_clip,
    gen=(o.generator.lr, o.generator.min_lr), random=config.adautomix.random_num, margin=config.adautomix.lam_margin,
    stage=config.generator.feature_stage, drop=config.model.drop_path, size=config.data.image_size,
    ema=(config.ema.momentum, config.ema.end_momentum, config.ema.adjust_start), alpha=config.mixup.alpha,
    cutmix=(config.mixup.cutmix_alpha, config.mixup.cutmix_prob), augment=config.data.augment,
  )  # fmt: skip


@pytest.mark.parametrize(
  "variant, expected",
  [
    (
      "swin_t_adautomix",
      dict(model="swin_t", lr=5e-4, min_lr=1e-4, warmup=20, clip=10.0, gen=(1e-3, 1e-4), random=True, margin=0.0,
           stage=2, drop=0.2, size=224, ema=(0.999, 0.99996, 0.25), alpha=1.0),
    ),
    ("deit_s_adautomix", dict(model="deit_s", warmup=5, clip=10.0, random=False, margin=0.03, stage=5, drop=0.1)),
    (
      "convnext_t_adautomix",
      dict(model="convnext_t_cifar", lr=2e-3, min_lr=1e-4, warmup=20, clip=0.0, stage=2, drop=0.3, size=0,
           augment="crop_flip"),
    ),
    ("deit_s_transmix", dict(lr=1e-3, min_lr=1e-6, warmup=20, clip=5.0, alpha=0.8, cutmix=(1.0, 0.8))),
    ("swin_t_deit", dict(lr=5e-4, min_lr=1e-6, clip=5.0, alpha=0.8, cutmix=(1.0, 0.5), augment="random_resized_crop")),
    ("convnext_t_mixup", dict(lr=1e-3, clip=0.0, alpha=0.8)),
    ("deit_s_cutmix", dict(alpha=2.0)),
    ("swin_t_puzzlemix", dict(lr=5e-4, min_lr=1e-6, warmup=20, clip=5.0, alpha=2.0, size=224)),
  ],
)  # fmt: skip
def test_official_settings(variant, expected):
  config = cifar100_vit.get_config(variant)
  assert {key: _settings(config)[key] for key in expected} == expected
  assert config.method == variant.rpartition("_")[2]
  assert (config.optimizer.name, config.optimizer.weight_decay, config.optimizer.decay_norm_and_bias) == (
    "adamw",
    0.05,
    False,
  )
  assert (config.optimizer.schedule, config.loss.label_smoothing, config.batch_size) == ("cosine_per_step", 0.1, 100)
  ra = config.data.randaugment
  assert (ra.num_ops, ra.level, ra.max_level, ra.level_std, ra.prob) == (2, 7.0, 10.0, 0.5, 0.5)


def test_alignmix_alternates_with_mixup_and_convnext_pools_its_normed_map():
  swin, convnext = (cifar100_vit.get_config(f"{b}_alignmix") for b in ("swin_t", "convnext_t"))
  assert (swin.alignmix.alternate, swin.model.norm_before_pool, swin.mixup.alpha) == ("mixup", False, 2.0)
  assert (convnext.alignmix.alternate, convnext.model.norm_before_pool) == ("mixup", True)
  assert (convnext.optimizer.lr, convnext.optimizer.grad_clip) == (1e-3, 0.0)


def test_every_variant_validates(tmp_path):
  weights = tmp_path / "resnet50.npz"  # AttentiveMix+'s network file must exist (its contents are read later).
  weights.write_bytes(b"")
  for backbone in cifar100_vit.BACKBONES:
    for method in cifar100_vit.METHODS:
      if method in ("transmix", "smmix") and backbone != "deit_s" or method == "alignmix" and backbone == "deit_s":
        continue  # TransMix and SMMix need a class token; AlignMix a feature map where DeiT-S has its class token.
      for extra in ("", ",e600", ",smoke"):
        config = cifar100_vit.get_config(f"{backbone}_{method}{extra}")
        config.attentivemix.pretrained = str(weights)
        validate(config, num_devices=1)
  assert cifar100_vit.get_config("deit_s_erm,e600").num_epochs == 600
  smoke = cifar100_vit.get_config("swin_t_adautomix,smoke")
  assert (smoke.num_epochs, smoke.model.width, smoke.optimizer.warmup_epochs) == (1, 24, 0.0)


@pytest.mark.parametrize(
  "variant, message",
  [
    ("swin_t_transmix", "has no class token. It runs on deit_s \\(deit_s_transmix\\); .* is swin_t_deit"),
    ("swin_t_smmix", "has no class token. It runs on deit_s \\(deit_s_smmix\\)"),
    ("convnext_t_transmix", "convnext_t_deit"),
    ("deit_s_alignmix", "reads its class token. It runs on swin_t and convnext_t"),
    ("swin_t_fmix", "Valid choices: deit_s_adautomix, deit_s_deit, .* e200, e600, smoke"),
    ("e600", "needs a <backbone>_<method> variant"),
  ],
)
def test_bad_variants_are_one_line_errors(variant, message):
  with pytest.raises(ValueError, match=message):
    cifar100_vit.get_config(variant)
