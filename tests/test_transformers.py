"""The transformer-era backbones: DeiT-S, Swin-T, ConvNeXt-T — sizes, feature taps, window attention, errors."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from adamix_jax import models
from adamix_jax.config import ConfigError
from adamix_jax.models import swin
from adamix_jax.models.transformer_layers import DropPath, drop_path_rates
from adamix_jax.validation import validate


def _shapes(name, size, classes=1000, **kwargs):
  """(parameter count, stage shapes) of backbone `name` with a `classes`-way head, traced, not run."""
  classifier = models.make_classifier(name, classes, **kwargs)
  images = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: classifier.init(jax.random.key(0), images, train=False))
  output = jax.eval_shape(lambda v: classifier.apply(v, images, train=False), variables)
  return models.count_params(variables["params"]), [s.shape[1:] for s in output.stages]


@pytest.mark.parametrize(
  "name, count",
  [("deit_s", 22_050_664), ("swin_t", 28_288_354), ("convnext_t", 28_589_128)],
)
def test_parameter_counts_equal_timms_published_ones(name, count):
  assert _shapes(name, 224)[0] == count


def test_the_cifar_convnext_differs_only_in_its_3x3_stem():
  count, stages = _shapes("convnext_t_cifar", 32)
  assert count == 28_589_128 - 4 * 4 * 3 * 96 + 3 * 3 * 3 * 96
  assert stages == [(32, 32, 96), (16, 16, 192), (8, 8, 384), (4, 4, 768), (1, 1, 768)]


def test_the_official_feature_taps():
  _, deit = _shapes("deit_s", 224)
  assert len(deit) == 13 and deit[5] == (14, 14, 384) and deit[-1] == (1, 1, 384)  # Tokens after block 6.
  _, swin_stages = _shapes("swin_t", 224)
  assert swin_stages == [(28, 28, 192), (14, 14, 384), (7, 7, 768), (7, 7, 768)]  # Stage 3 after merging.
  _, convnext = _shapes("convnext_t", 224)
  assert convnext[2] == (14, 14, 384) and convnext[-1] == (1, 1, 768)


def _reference_shifted_attention(params, x, window, shift, heads):
  """Plain attention over the whole grid, each token allowed only the tokens of its displaced window
  (windows start at -shift and are cut at the border), with the relative position bias by offset."""
  batch, height, width, dim = x.shape
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  rows, cols = rows.reshape(-1), cols.reshape(-1)
  block = (
    (rows + window - shift) // window * 1000 + (cols + window - shift) // window
    if shift
    else (rows // window * 1000 + cols // window)
  )
  allowed = block[:, None] == block[None, :]
  table = params["window_attn"]["relative_position_bias_table"]
  offsets = (rows[:, None] - rows[None, :] + window - 1) * (2 * window - 1) + (
    cols[:, None] - cols[None, :] + window - 1
  )
  bias = np.where(allowed, 0.0, -np.inf)[None] + np.asarray(table)[np.where(allowed, offsets, 0)].transpose(2, 0, 1)
  attn = params["window_attn"]["attn"]
  tokens = np.asarray(x, np.float64).reshape(batch, height * width, dim)
  qkv = tokens @ np.asarray(attn["qkv"]["kernel"], np.float64) + np.asarray(attn["qkv"]["bias"])
  qkv = qkv.reshape(batch, -1, 3, heads, dim // heads).transpose(2, 0, 3, 1, 4)
  scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) * (dim // heads) ** -0.5 + bias[None]
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  out = (weights @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch, -1, dim)
  out = out @ np.asarray(attn["proj"]["kernel"], np.float64) + np.asarray(attn["proj"]["bias"])
  return out.reshape(batch, height, width, dim)


@pytest.mark.parametrize("shift", [0, 2])
def test_window_attention_with_the_shift_mask_equals_masked_full_attention(shift):
  module = swin.ShiftedWindowAttention(num_heads=2, window=4, shift=shift)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 8))
  params = module.init(jax.random.key(2), x)["params"]
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(3), p.shape), params)  # Non-zero bias.
  got = module.apply({"params": params}, x)
  np.testing.assert_allclose(got, _reference_shifted_attention(params, x, 4, shift, 2), atol=2e-5, rtol=2e-5)


def test_shift_mask_separates_exactly_the_wrapped_regions():
  mask = swin.shifted_window_mask(8, 8, 4, 2)
  assert mask.shape == (4, 16, 16)
  assert (mask[0] == 0).all()  # The top-left window holds one region.
  assert sorted(np.unique(mask[3])) == [-100.0, 0.0]
  index = swin.relative_position_index(3)
  assert index.shape == (9, 9) and index.min() == 0 and index.max() == 24 and (np.diag(index) == 12).all()


def test_a_grid_no_larger_than_the_window_is_one_unshifted_window():
  assert swin.stage_windows(7, 7) == (7, False)
  assert swin.stage_windows(2, 4) == (2, False)
  assert swin.stage_windows(14, 7) == (7, True)


@pytest.mark.slow
def test_small_variants_backpropagate_through_every_parameter():
  """Shallow ConvNeXt (ImageNet stem), Swin (window 4, a shifted block) and DeiT on 32x32 images, with drop
  path on: every parameter gets a finite, non-zero gradient."""
  backbones = [
    models.ConvNeXt(width=8, depths=(1, 1, 1, 1), drop_path=0.1, layer_scale=1.0),
    models.SwinTransformer(width=6, depths=(2, 1, 1, 1), window=4, drop_path=0.1),
    models.VisionTransformer(patch=8, width=12, depth=2, num_heads=3, drop_path=0.1),
  ]
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  for backbone in backbones:
    classifier = models.Classifier(backbone, 10)
    params = jax.jit(functools.partial(classifier.init, train=False))(jax.random.key(1), images)["params"]

    @jax.jit
    def grads(p, classifier=classifier):
      loss = lambda p: jnp.mean(
        classifier.apply({"params": p}, images, train=True, rngs={"drop_path": jax.random.key(2)}).logits["one"] ** 2
      )
      return jax.grad(loss)(p)

    leaves = jax.tree_util.tree_leaves_with_path(grads(params))
    norms = {jax.tree_util.keystr(k): float(jnp.linalg.norm(g)) for k, g in leaves}
    assert all(np.isfinite(v) for v in norms.values()), type(backbone).__name__
    # A 1x1 token grid (Swin's stage 4 here) is one token per window: softmax over one score has no gradient.
    single_token = {jax.tree_util.keystr(k) for k, g in leaves if g.shape[0] == 1 and "relative_position" in str(k)}
    assert {k for k, v in norms.items() if v == 0} <= single_token, type(backbone).__name__


def test_gelu_is_the_exact_one_and_differentiates_inside_shard_map():
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P
  from scipy.special import erf as exact_erf

  from adamix_jax.models.transformer_layers import erf, gelu

  x = np.linspace(-8, 8, 100_001, dtype=np.float32)
  assert np.abs(np.asarray(erf(x)) - exact_erf(x.astype(np.float64))).max() < 5e-7
  np.testing.assert_allclose(gelu(x), jax.nn.gelu(x, approximate=False), atol=2e-6)
  mesh = jax.make_mesh((8,), ("data",))
  sharded = jax.device_put(jnp.asarray(x[:64000].reshape(8, -1)), NamedSharding(mesh, P("data")))
  grad = jax.shard_map(
    lambda v: jax.grad(lambda v: gelu(v).sum())(v), mesh=mesh, in_specs=P("data"), out_specs=P("data")
  )
  expected = jax.grad(lambda v: jax.nn.gelu(v, approximate=False).sum())(x[:64000].reshape(8, -1))
  np.testing.assert_allclose(jax.jit(grad)(sharded), expected, atol=1e-5)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
  x = jnp.ones((4000, 3))
  y = DropPath(0.25).apply({}, x, train=True, rngs={"drop_path": jax.random.key(0)})
  per_sample = np.asarray(y)
  np.testing.assert_allclose(np.unique(per_sample), [0.0, 4 / 3], rtol=1e-6)
  assert (per_sample == per_sample[:, :1]).all()
  assert abs(per_sample.mean() - 1) < 0.05
  assert (DropPath(0.25).apply({}, x, train=False) == x).all()
  rates = drop_path_rates(0.1, (2, 2))
  assert np.allclose(list(itertools.chain(*rates)), [0, 0.1 / 3, 0.2 / 3, 0.1])


@pytest.mark.parametrize(
  "overrides, message",
  [
    ({"model.name": "convnext_t_cifar"}, "not a multiple of 8"),
    ({"model.name": "deit_s", "data.augment": "random_resized_crop", "data.image_size": 40}, "patch size 16"),
    (
      {"model.name": "swin_t", "model.width": 24, "data.augment": "random_resized_crop", "data.image_size": 64},
      "16x16 token grid at stage 1, not a multiple of the window 7",
    ),
    ({"model.name": "swin_t", "model.width": 8}, "attention heads"),
    ({"model.window": 4}, "applies to swin_t"),
  ],
)
def test_inputs_a_backbone_cannot_take_are_config_errors(tfds_dir, overrides, message):
  with pytest.raises(ConfigError, match=message):
    validate(tiny_config(tfds_dir, **overrides), num_devices=1)


def test_a_feature_tap_the_backbone_lacks_lists_the_valid_ones(tfds_dir):
  from adamix_jax import data, methods

  config = tiny_config(tfds_dir, method="adautomix", **{"generator.feature_stage": 7})
  method = methods.METHODS["adautomix"].from_config(config, total_steps=10)
  classifier = models.make_classifier("cifar_resnet18", 10, method.head_names, width=4)
  with pytest.raises(ConfigError, match=r"Valid choices .*2: \(7, 7, 16\), 3: \(4, 4, 32\)\."):
    method.make_networks(classifier, data.data_info(config).image_shape)


@pytest.mark.slow
def test_drop_path_is_on_in_every_training_pass_of_a_step(tfds_dir):
  """A small DeiT on 32x32 images trains one step of a static mixup on 8 devices with drop path: every pass
  gets its key (a pass without one would fail), and dropping changes the step's loss. (AdAutoMix's passes
  with drop path, which include ERM's `train_pass`: the tiny-variant test below.)"""
  from helpers import tiny_run

  from adamix_jax import data, sharding

  def first_loss(drop_path):
    overrides = {
      "method": "mixup", "model.name": "deit_s", "model.width": 12, "model.drop_path": drop_path,
      "data.augment": "random_resized_crop", "data.image_size": 32, "num_devices": 8, "batch_size": 16,
    }  # fmt: skip
    config = tiny_config(tfds_dir, **overrides)
    validate(config, num_devices=8)
    mesh, _, state, train_step = tiny_run(config)
    batch = next(iter(data.InputPipeline(config, data.data_info(config)).train_batches(0)))
    _, metrics = train_step(state, sharding.shard_batch(mesh, batch))
    return float(jax.device_get(metrics["loss"]))

  dropped, kept = first_loss(0.5), first_loss(0.0)
  assert np.isfinite(dropped) and dropped != kept


TINY_BACKBONES = {
  "deit_s": {"model.width": 12, "generator.feature_stage": 5},
  "swin_t": {"model.width": 6, "model.window": 4},
  "convnext_t": {"model.width": 8},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_BACKBONES))
def test_a_tiny_variant_of_each_backbone_trains_adautomix_on_8_devices_and_compiles_once(tfds_dir, name):
  """Two AdAutoMix steps (N = 2, the lambda channel, nearest upsampling, drop path) on 8 devices: one
  compilation, finite losses, every classifier parameter moved and the generator trained."""
  from helpers import tiny_run

  from adamix_jax import data, sharding

  overrides = {
    "method": "adautomix", "model.name": name, "model.drop_path": 0.1, "data.augment": "random_resized_crop",
    "data.image_size": 32, "num_devices": 8, "batch_size": 16, "adautomix.num_mix": 2,
    "generator.lam_concat": True, "generator.upsample_mode": "nearest", **TINY_BACKBONES[name],
  }  # fmt: skip
  config = tiny_config(tfds_dir, **overrides)
  validate(config, num_devices=8)
  mesh, _, state, train_step = tiny_run(config)
  before = jax.device_get(state.params)
  for batch in itertools.islice(data.InputPipeline(config, data.data_info(config)).train_batches(0), 2):
    state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
    assert np.isfinite(float(metrics["loss"]))
  assert train_step._cache_size() == 1
  after = jax.device_get(state.params)
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after)
  assert all(jax.tree.leaves(moved["classifier"]))
  assert moved["generator"]["conv_v"]["kernel"]  # (Over a 1x1 Swin tap, q and k get no gradient: one position.)


def test_the_deit_recipe_draws_cutmix_or_mixup_per_batch(tfds_dir):
  from adamix_jax import methods

  config = tiny_config(tfds_dir, method="deit", **{"mixup.cutmix_prob": 0.7})
  method = methods.METHODS["deit"].from_config(config)
  images, labels = jax.random.normal(jax.random.key(0), (4, 16, 16, 3)), jnp.arange(4)
  boxes, mix = 0, jax.jit(method.mix)
  for seed in range(60):
    mixed = mix(images, labels, jax.random.key(seed))
    masks = np.asarray(mixed.masks)
    if set(np.unique(masks)) <= {0.0, 1.0} and 0 < masks.mean() < 1:  # CutMix: a box, lambda its area.
      boxes += 1
      np.testing.assert_allclose(mixed.lams[0], masks.mean(axis=(1, 2, 3)), atol=1e-6)
    else:  # MixUp: one lambda everywhere.
      assert np.ptp(masks) < 1e-6
  assert 30 <= boxes <= 54  # 42 expected of 60.


def test_transmix_lambda_is_half_area_half_attention_on_the_own_patches():
  from adamix_jax.methods.static_mixup import transmix_lambda

  rng = np.random.default_rng(0)
  own = np.ones((2, 8, 8), np.float32)
  own[:, 2:6, 0:4] = 0  # A pasted 4x4 box: area share 0.75.
  attention = rng.random((2, 4, 4)).astype(np.float32)
  attention /= attention.sum(axis=(1, 2), keepdims=True) * 1.1  # The class token's self-attention takes the rest.
  patch_own = own[:, ::2, ::2]  # PyTorch's nearest downsampling: each patch's top-left pixel.
  on_own, on_pasted = (attention * patch_own).sum((1, 2)), (attention * (1 - patch_own)).sum((1, 2))
  expected = 0.5 * 0.75 + 0.5 * on_own / (on_own + on_pasted)
  lam = transmix_lambda(jnp.asarray(own), jnp.full((2,), 0.75), jnp.asarray(attention), 0.5)
  np.testing.assert_allclose(lam, expected, rtol=1e-6)
  all_on_pasted = jnp.asarray(attention * (1 - patch_own))
  np.testing.assert_allclose(transmix_lambda(jnp.asarray(own), jnp.full((2,), 0.75), all_on_pasted, 0.5), 0.375)


def test_transmix_reweights_cutmix_by_the_sown_class_attention_and_trains(tfds_dir):
  from helpers import tiny_run

  from adamix_jax import data, methods, sharding
  from adamix_jax.methods.static_mixup import transmix_lambda

  overrides = {
    "method": "transmix", "model.name": "deit_s", "model.width": 12, "data.augment": "random_resized_crop",
    "data.image_size": 32, "batch_size": 8, "mixup.cutmix_prob": 1.0,
  }  # fmt: skip
  config = tiny_config(tfds_dir, **overrides)
  validate(config, num_devices=1)
  mesh, experiment, state, train_step = tiny_run(config)
  batch = next(iter(data.InputPipeline(config, data.data_info(config)).train_batches(0)))
  images = jnp.asarray(batch["images"], jnp.float32) / 255
  variables = {"params": state.params["classifier"], "batch_stats": state.batch_stats["classifier"]}
  method = methods.METHODS["transmix"].from_config(config)
  key = jax.random.key(3)
  forward = jax.jit(lambda variables, batch, key: method.forward(experiment.nets, variables, batch, key, None))
  _, labels, lams, _ = forward(variables, {"images": images, "labels": batch["labels"]}, key)
  mixed = jax.jit(method.mix)(images, batch["labels"], key)
  sow = jax.jit(
    lambda variables, x: experiment.nets.classifier.apply(variables, x, train=True, mutable=["intermediates"])
  )
  _, sown = sow(variables, mixed.images)
  attention = sown["intermediates"]["backbone"]["cls_attention"][0]
  assert attention.shape == (8, 2, 2)
  assert np.all(attention > 0) and np.all(attention.sum(axis=(1, 2)) < 1)  # The class token keeps the rest.
  expected = transmix_lambda(mixed.masks[..., 0], mixed.lams[0], attention, 0.5)
  np.testing.assert_allclose(lams[0], expected, rtol=1e-5)
  np.testing.assert_allclose(lams[0] + lams[1], 1, rtol=1e-6)
  assert not np.allclose(lams[0], mixed.lams[0])  # The attention moved lambda off the area share.
  np.testing.assert_array_equal(labels, mixed.labels)
  _, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert np.isfinite(float(metrics["loss"]))


def test_transmix_on_a_backbone_without_a_class_token_is_a_config_error(tfds_dir):
  config = tiny_config(tfds_dir, method="transmix", **{"model.name": "swin_t", "model.width": 6})
  with pytest.raises(ConfigError, match="'transmix' runs on deit_s .* not config.model.name = 'swin_t'"):
    validate(config, num_devices=1)


@pytest.mark.slow
def test_bfloat16_compute_stays_close_to_float32_over_a_few_steps(tfds_dir):
  """bf16 activations; float32 parameters, optimiser state, EMA network and losses: three AdamW steps of a
  tiny DeiT stay within a few percent of the float32 run's losses and parameters."""
  name = "deit_s"
  from helpers import tiny_run

  from adamix_jax import data, sharding

  losses, params = {}, {}
  for dtype in ("float32", "bfloat16"):
    overrides = {
      "model.name": name, "model.dtype": dtype, "data.augment": "random_resized_crop", "data.image_size": 32,
      "batch_size": 16, "optimizer.name": "adamw", "optimizer.lr": 1e-3, "ema.track": True, **TINY_BACKBONES[name],
    }  # fmt: skip
    config = tiny_config(tfds_dir, **overrides)
    mesh, experiment, state, train_step = tiny_run(config)
    stages = experiment.nets.classifier.apply(
      {"params": state.params["classifier"]}, jnp.zeros((2, 32, 32, 1)), train=False
    ).stages
    assert stages[0].dtype == jnp.dtype(dtype)  # The compute is in that dtype.
    losses[dtype] = []
    for batch in itertools.islice(data.InputPipeline(config, data.data_info(config)).train_batches(0), 3):
      state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
      assert metrics["loss"].dtype == jnp.float32
      losses[dtype].append(float(metrics["loss"]))
    floats = jax.tree.leaves((state.params, state.ema, state.opt_state))
    assert all(leaf.dtype == jnp.float32 for leaf in floats if jnp.issubdtype(leaf.dtype, jnp.floating))
    params[dtype] = jax.device_get(state.params)
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), params["bfloat16"], params["float32"])
  assert max(jax.tree.leaves(moved)) < 1e-2  # AdamW moves each parameter by about 3e-3 in three steps.
