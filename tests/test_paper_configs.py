"""The Tiny-ImageNet, ImageNet and fine-grained configs: official values, checks, and short real runs.

The runs use the configs as they are, pointed at a small generated image folder with a narrow backbone
(and, for fine-grained, torchvision-layout weights written by the test): the data recipe, pretrained
loading, lambda channel, random N, N = 2 and the attention BatchNorm all go through the real loop.
"""

import importlib
import json
import os
import sys

import numpy as np
import pytest
from helpers import torchvision_state
from test_image_data import write_folder_dataset

from adamix_jax import data, sharding, train
from adamix_jax.config import ConfigError, set_path
from adamix_jax.experiment import make_experiment
from adamix_jax.validation import validate

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def _load(name):
  sys.path.insert(0, CONFIGS)
  try:
    return importlib.import_module(name)
  finally:
    sys.path.remove(CONFIGS)


@pytest.mark.parametrize(
  "module,variant,expected",
  [
    ("tiny_imagenet", "r18", dict(lr=0.2, min_lr=0.0, gen=(0.1, 0.0), beta=0.4, num_mix=3, size=64, end=0.999999)),
    ("tiny_imagenet", "rx50", dict(lr=0.2, min_lr=0.05, gen=(0.1, 1e-3), beta=0.4, num_mix=3, size=64)),
    ("imagenet", "r18", dict(lr=0.1, min_lr=0.0, gen=(0.1, 1e-3), beta=0.1, num_mix=2, size=224, concat=True)),
    ("imagenet", "r50", dict(lr=0.1, gen=(0.1, 1e-3), beta=0.1, num_mix=2, att_norm=True, end=0.99999)),
    ("fine_grained", "cub_r18", dict(lr=0.001, gen=(0.1, 1e-3), beta=0.3, random=True, batch=16, wd=5e-4)),
    ("fine_grained", "aircraft_r18", dict(min_lr=5e-4, beta=0.3, margin=0.0, random=True)),
    ("fine_grained", "aircraft_rx50", dict(min_lr=0.0, beta=0.6, margin=0.03, random=True)),
    ("fine_grained", "cars_rx50", dict(beta=0.3, random=False, gen=(0.1, 1e-3))),
    ("fine_grained", "cub_rx50", dict(beta=0.1, gen=(0.1, 5e-4))),
  ],
)
def test_official_settings(module, variant, expected):
  config = _load(module).get_config(variant)
  actual = dict(
    lr=config.optimizer.lr, min_lr=config.optimizer.min_lr, beta=config.adautomix.beta,
    gen=(config.optimizer.generator.lr, config.optimizer.generator.min_lr), num_mix=config.adautomix.num_mix,
    size=config.data.image_size, end=config.ema.end_momentum, concat=config.generator.lam_concat,
    att_norm=config.generator.attention_norm, random=config.adautomix.random_num, batch=config.batch_size,
    wd=config.optimizer.weight_decay, margin=config.adautomix.lam_margin,
  )  # fmt: skip
  assert {key: actual[key] for key in expected} == expected
  assert config.method == "adautomix"
  if module == "fine_grained":  # The official runs start from ImageNet weights: a missing file is an error.
    with pytest.raises(ConfigError, match="is not a file. Give the .npz of torchvision weights"):
      validate(config, 1)
    config.model.pretrained = ""
  validate(config, 1)


def test_unknown_variants_list_the_choices():
  for module, message in (("tiny_imagenet", "r18, rx50, smoke"), ("imagenet", "r18, r34, r50, smoke")):
    with pytest.raises(ValueError, match=message):
      _load(module).get_config("r101")
  with pytest.raises(ValueError, match="cub_r18, cub_r50"):
    _load("fine_grained").get_config("dogs_r18")


def _shrink(config, data_dir, **overrides):
  """The config on the generated image folder at 32x32, width 8, one epoch of 5 steps, one device."""
  config.data.data_dir = data_dir
  config.data.name = "fgvc_aircraft"
  config.data.image_size, config.data.eval_resize = 32, 36
  config.data.max_train_examples = config.data.max_eval_examples = 0
  config.model.width, config.num_devices = 8, 1
  config.batch_size, config.eval_batch_size, config.num_epochs = 6, 12, 1
  config.eval.median_of_last, config.log.progress = 1, False
  for key, value in overrides.items():
    set_path(config, key, value)
  return config


@pytest.fixture(scope="module")
def folder_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("paper_configs")
  write_folder_dataset(str(directory / "fgvc_aircraft"))
  return str(directory)


@pytest.mark.slow
def test_fine_grained_run_starts_from_the_pretrained_backbone(folder_dir, tmp_path):
  weights = torchvision_state(np.random.default_rng(0), False, (2, 2, 2, 2), 8, 1, 64)
  np.savez(tmp_path / "resnet18.npz", **weights)
  config = _shrink(
    _load("fine_grained").get_config("aircraft_r18"), folder_dir, **{"model.pretrained": str(tmp_path / "resnet18.npz")}
  )
  validate(config, 1)
  info = data.data_info(config)
  state = make_experiment(config, info, sharding.make_mesh(1)).init()
  stem = np.asarray(state.params["classifier"]["backbone"]["stem_conv"]["kernel"])
  np.testing.assert_array_equal(stem, weights["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(state.ema["params"]["backbone"]["stem_conv"]["kernel"], stem)  # The teacher too.
  var = weights["layer4.1.bn2.running_var"]
  np.testing.assert_array_equal(state.ema["batch_stats"]["backbone"]["stage4_block2"]["BatchNorm_1"]["var"], var)
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["steps"] == 5 and np.isfinite(summary["reported_top1"])
  with open(tmp_path / "run" / "metrics.jsonl") as f:
    evals = [r for r in map(json.loads, f) if r["kind"] == "eval"]
  assert {"online/one/top1", "online/mix/top1", "ema/one/top1", "ema/mix/top1"} <= set(evals[-1]["metrics"])


@pytest.mark.slow
def test_imagenet_r50_run_with_two_images_lambda_channel_and_attention_norm(folder_dir, tmp_path):
  # The R50 settings (N = 2, lambda channel, BN after q/k) on a ResNet-18 body: the same paths, a faster compile.
  config = _shrink(_load("imagenet").get_config("r50"), folder_dir, **{"model.name": "resnet18"})
  assert config.generator.attention_norm and config.generator.lam_concat and config.adautomix.num_mix == 2
  validate(config, 1)
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["steps"] == 5 and np.isfinite(summary["reported_top1"])
  info = data.data_info(config)
  state = make_experiment(config, info, sharding.make_mesh(1)).init()
  assert state.batch_stats["generator"]  # BatchNorm after the q/k projections (official R50 only).
