"""SAMix held to OpenMixup's behaviour (tests/official_samix.py transcribes the reference) and trained end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import official_samix
import pytest
from helpers import tiny_config
from test_adautomix import _tiny_setup
from test_paper_configs import _load

from adamix_jax import generators, train
from adamix_jax.config import ConfigError
from adamix_jax.methods import METHODS, automix
from adamix_jax.methods.samix import SAMix, adjust_masks
from adamix_jax.mixing import mix
from adamix_jax.validation import validate


def _random_weights(rng, channels):
  d, hidden = channels // 2, channels // 2
  return {
    "query_w": rng.normal(0, 0.3, (d, 2 * channels)),
    "query_b": rng.normal(0, 0.1, d),
    "key_w": rng.normal(0, 0.3, (d, 2 * channels)),
    "key_b": rng.normal(0, 0.1, d),
    "value1_w": rng.normal(0, 0.3, (hidden, channels)),
    "bn_scale": rng.uniform(0.5, 1.5, hidden),
    "bn_bias": rng.normal(0, 0.1, hidden),
    "value2_w": rng.normal(0, 0.5, (1, hidden)),
  }


def _flax_params(weights):
  f32 = lambda array: jnp.asarray(array, jnp.float32)
  return {
    "query": {"kernel": f32(weights["query_w"].T), "bias": f32(weights["query_b"])},
    "key": {"kernel": f32(weights["key_w"].T), "bias": f32(weights["key_b"])},
    "value": {
      "conv1": {"kernel": f32(weights["value1_w"].T)},
      "bn": {"scale": f32(weights["bn_scale"]), "bias": f32(weights["bn_bias"])},
      "conv2": {"kernel": f32(weights["value2_w"].T)},
    },
  }


@pytest.mark.parametrize("up_mode,lam", [("bilinear", 0.3), ("nearest", 0.8), ("bilinear", 0.97)])
def test_samix_mix_block_is_the_references(up_mode, lam):
  rng = np.random.default_rng(7)
  batch, channels, size, scale = 5, 8, 4, 4
  x = rng.normal(0, 1, (batch, channels, size, size))
  index = rng.permutation(batch)
  weights = _random_weights(rng, channels)
  expected = official_samix.pixel_mix_block(x, lam, index, weights, scale, up_mode)

  block = generators.MixBlock(
    in_channels=channels, upsample_mode=up_mode, scale_factor=scale, lam_mul_k=0.25, value_hidden=4, qk_concat=True
  )
  nhwc = jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32)
  features = jnp.stack([nhwc, nhwc[index]])
  variables = block.init(jax.random.key(0), features, jnp.float32(lam), train=False)
  assert jax.tree.structure(variables["params"]) == jax.tree.structure(_flax_params(weights))
  masks, updates = block.apply(
    {"params": _flax_params(weights), "batch_stats": variables["batch_stats"]},
    features,
    jnp.float32(lam),
    mutable=["batch_stats"],
  )
  np.testing.assert_allclose(np.asarray(masks), expected.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
  assert not np.allclose(updates["batch_stats"]["value"]["bn"]["mean"], 0)  # Trains in batch-statistics mode.


def test_lambda_rescaling_and_mask_loss_are_the_references():
  for lam in (0.0, 0.1, 0.5, 0.77, 1.0):
    for k in (0.0, 0.25, 1.0):
      assert float(generators.rescale_lam(jnp.float32(lam), k)) == pytest.approx(
        official_samix.rescale_lam_mult(lam, k), abs=1e-6
      )
  rng = np.random.default_rng(3)
  for lam in (0.2, 0.5, 0.9):
    m_b = rng.uniform(0, 1, (4, 8, 8)) ** 3
    masks = np.stack([1 - m_b, m_b], axis=-1)
    expected = official_samix.mask_loss_l1_variance(masks.transpose(0, 3, 1, 2), lam)
    got = generators.mask_loss(jnp.asarray(masks, jnp.float32), lam, margin=0.1, variance=True)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    assert float(generators.mask_loss(jnp.asarray(masks, jnp.float32), lam, margin=0.1)) == pytest.approx(
      expected + 2 * np.mean((m_b - m_b.mean()) ** 2), abs=1e-6
    )


def test_mask_adjustment_is_the_references():
  rng = np.random.default_rng(11)
  own = rng.uniform(0, 1, (6, 8, 8))
  own[2] = 0.4  # Mean exactly lam: left as it was.
  masks = np.stack([own, 1 - own], axis=-1)
  for lam in (0.4, 0.1, 0.9):
    expected = official_samix.adjust_mask(masks.transpose(0, 3, 1, 2), lam).transpose(0, 2, 3, 1)
    got = adjust_masks(jnp.asarray(masks, jnp.float32), jnp.float32(lam))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got)[..., 0].mean(axis=(1, 2)), lam, atol=1e-5)


def _tiny_samix(tfds_dir, **overrides):
  config = tiny_config(tfds_dir, method="samix", batch_size=6, **{"generator.feature_stage": 1, **overrides})
  return config, METHODS["samix"].from_config(config, total_steps=10)


def test_samix_plan_adjusts_the_classifier_masks_at_the_configured_rate(tfds_dir):
  _, method = _tiny_samix(tfds_dir)
  keys = jax.random.split(jax.random.key(0), 4000)
  draws = jax.vmap(lambda key: method.default_plan(key, 0, 6, 2).adjust_bb)(keys)
  assert float(np.mean(draws)) == pytest.approx(0.25, abs=0.025)
  _, never = _tiny_samix(tfds_dir, **{"samix.mask_adjust": 0.0})
  assert not any(bool(never.default_plan(jax.random.key(seed), 0, 6, 2).adjust_bb) for seed in range(50))


def test_samix_refuses_a_lambda_channel(tfds_dir):
  with pytest.raises(ConfigError, match="lam_concat = True does not apply to samix"):
    _tiny_samix(tfds_dir, **{"generator.lam_concat": True})


@pytest.mark.parametrize("adjust", [False, True])
def test_samix_loss_terms_and_the_classifier_batch(tfds_dir, adjust):
  def plan_with(key, step, batch_size, num_mix):
    plan = automix.sample_plan(jax.random.key(3), batch_size, alpha=2.0)
    return plan.replace(bb_lams=jnp.array([0.3, 0.7]), adjust_bb=jnp.bool_(adjust))

  overrides = {"mixup.alpha": 2.0, "automix.lam_margin": 0.08, "generator.upsample_mode": "bilinear"}
  _, method, nets, _, state, batch = _tiny_setup(tfds_dir, SAMix, plan_with, method="samix", **overrides)
  assert set(state.batch_stats) == {"classifier", "generator"}  # The value's BN.
  (loss, (stats, metrics)), grads = jax.value_and_grad(method.loss, argnums=1, has_aux=True)(
    nets, state.params, state, batch, jax.random.key(5)
  )
  parts = metrics["loss_one"] + metrics["loss_mix_q"] + metrics["loss_mix_k"] + metrics["loss_mask"]
  assert float(loss) == pytest.approx(float(parts), rel=1e-6)
  assert set(stats) == {"classifier", "teacher", "generator"}
  assert all(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(grads["generator"]["value"]))

  # The classifier's batch: the generator's detached masks for its pair, rescaled to lambda_mb when adjusted.
  plan = method.sample_plan(None, state.step, 6, 2)
  generated = method.generate(nets, state.params, state, batch["images"], plan)
  features = generated.clean_teacher.stages[1]
  generator = (state.params["generator"], state.batch_stats["generator"])
  masks, _ = method._masks(nets, *generator, features, plan.bb_perms, plan.bb_lams)
  if adjust:
    masks = adjust_masks(masks, plan.mb_lams[0])
    np.testing.assert_allclose(np.mean(masks[..., 0], axis=(1, 2)), plan.mb_lams[0], atol=1e-5)
  np.testing.assert_allclose(generated.mixed_bb, mix(batch["images"], plan.bb_perms, masks), rtol=1e-5, atol=1e-5)


def test_samix_trains_end_to_end_on_two_devices(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, method="samix", num_devices=2, num_epochs=1, **{"generator.feature_stage": 1})
  summary = train.train_and_evaluate(config, str(tmp_path))
  assert summary["steps"] == 10 and np.isfinite(summary["reported_top1"])


@pytest.mark.parametrize("variant,mask_adjust", [("samix", 0.25), ("samix,rx50", 0.0)])
def test_cifar100_samix_config_is_openmixups(variant, mask_adjust):
  config = _load("cifar100").get_config(variant)
  actual = (
    config.method, config.mixup.alpha, config.automix.lam_margin, config.automix.mask_loss,
    config.automix.mask_margin, config.generator.upsample_mode, config.generator.lam_concat,
    config.samix.lam_mul_k, config.samix.mask_adjust, config.optimizer.lr, config.optimizer.min_lr,
  )  # fmt: skip
  assert actual == ("samix", 2.0, 0.08, 0.1, 0.1, "bilinear", False, 0.25, mask_adjust, 0.1, 0.05)
  validate(config, 1)
  quick = _load("quickstart").get_config("samix")
  assert (quick.method, quick.optimizer.min_lr, quick.ema.momentum) == ("samix", 0.05, 0.99)
