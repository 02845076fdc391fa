"""Backbones: published parameter counts, stage shapes, the official initialisation, PyTorch BatchNorm."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from adamix_jax import models


def _params(name, num_classes, size, **kwargs):
  classifier = models.make_classifier(name, num_classes, **kwargs)
  images = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: classifier.init(jax.random.key(0), images, train=False))
  output = jax.eval_shape(lambda v: classifier.apply(v, images, train=False), variables)
  return variables, output


# torchvision's counts for the ImageNet-stem nets; the CIFAR nets replace the 7x7 stem by a 3x3 one.
PUBLISHED = {
  ("cifar_resnet18", 100): 11_220_132,
  ("cifar_resnet34", 100): 21_328_292,
  ("cifar_resnet50", 100): 23_705_252,
  ("cifar_resnext50_32x4d", 100): 25_028_904 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64 - 2048 * 900 - 900,
  ("preact_resnet18", 100): 11_217_316 + 2 * 512,  # kuangliu's PreActResNet18 plus the final BN.
  ("wrn28_8", 100): 23_401_012,  # Zagoruyko & Komodakis: 23.4 M.
  ("resnet18", 1000): 11_689_512,
  ("resnet34", 1000): 21_797_672,
  ("resnet50", 1000): 25_557_032,
  ("resnext50_32x4d", 1000): 25_028_904,
}


@pytest.mark.parametrize("name,num_classes", list(PUBLISHED))
def test_parameter_counts_match_published(name, num_classes):
  variables, _ = _params(name, num_classes, 32)
  assert models.count_params(variables["params"]) == PUBLISHED[name, num_classes]


def test_cifar_resnet18_stage_shapes_feed_the_generator():
  _, output = _params("cifar_resnet18", 100, 32, head_names=("one", "mix"))
  assert [s.shape for s in output.stages] == [(2, 32, 32, 64), (2, 16, 16, 128), (2, 8, 8, 256), (2, 4, 4, 512)]
  assert set(output.logits) == {"one", "mix"} and output.logits["mix"].shape == (2, 100)


def test_imagenet_stem_downsamples_by_four():
  _, output = _params("resnet18", 10, 224)
  assert output.stages[0].shape == (2, 56, 56, 64) and output.stages[2].shape == (2, 14, 14, 256)


def test_unknown_backbone_lists_choices():
  with pytest.raises(ValueError, match="cifar_resnet18"):
    models.make_backbone("resnet19")


def test_official_initialisation():
  classifier = models.make_classifier("cifar_resnet18", 100, width=16)
  params = classifier.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
  block = params["backbone"]["stage2_block1"]
  assert np.all(block["BatchNorm_1"]["scale"] == 0)  # zero_init_residual: last BN of the branch.
  assert np.all(block["BatchNorm_0"]["scale"] == 1) and np.all(block["shortcut_bn"]["scale"] == 1)
  kernel = np.asarray(params["backbone"]["stage3_block1"]["Conv_1"]["kernel"])  # 3x3, 64 -> 64.
  assert kernel.std() == pytest.approx(np.sqrt(2 / (3 * 3 * 64)), rel=0.05)  # kaiming normal, fan_out.
  head = params["head_one"]["Dense_0"]
  assert np.asarray(head["kernel"]).std() == pytest.approx(0.01, rel=0.05) and np.all(head["bias"] == 0)


def test_flax_initialisation_is_selectable():
  classifier = models.make_classifier("cifar_resnet18", 100, width=16, init="flax")
  params = classifier.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)["params"]
  assert np.all(params["backbone"]["stage2_block1"]["BatchNorm_1"]["scale"] == 1)
  kernel = np.asarray(params["head_one"]["Dense_0"]["kernel"])
  assert kernel.std() == pytest.approx(np.sqrt(1 / 128), rel=0.1)  # lecun normal, fan_in 128.


def test_batch_norm_matches_pytorch_semantics():
  x = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 5, 3)).astype(np.float32)
  bn = models.BatchNorm()
  variables = bn.init(jax.random.key(0), x, train=True)
  y, updates = bn.apply(variables, x, train=True, mutable=["batch_stats"])
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5, atol=1e-5)
  n = 4 * 5 * 5
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["var"], 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)
  y_eval = bn.apply({**variables, **updates}, x, train=False)
  stats = updates["batch_stats"]
  np.testing.assert_allclose(y_eval, (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5), rtol=1e-5, atol=1e-5)


def test_synchronised_batch_norm_equals_full_batch_statistics():
  x = np.random.default_rng(1).normal(size=(8, 3, 3, 2)).astype(np.float32)
  mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
  full = models.BatchNorm()
  variables = full.init(jax.random.key(0), x, train=True)
  expected, expected_stats = full.apply(variables, x, train=True, mutable=["batch_stats"])

  @functools.partial(jax.shard_map, mesh=mesh, in_specs=P("data"), out_specs=(P("data"), P()))
  def synced(shard):
    y, stats = models.BatchNorm(axis_name="data").apply(variables, shard, train=True, mutable=["batch_stats"])
    return y, stats

  y, stats = jax.jit(synced)(x)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(stats["batch_stats"]["var"], expected_stats["batch_stats"]["var"], rtol=1e-5)
