"""AdAutoMix and AutoMix: two official iterations reproduced exactly (golden), N = 3 written out, 8 devices."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config

from adamix_jax import data, models, sharding, steps
from adamix_jax.methods import automix
from adamix_jax.methods.adautomix import AdAutoMix, sample_plan
from adamix_jax.methods.automix import AutoMix
from adamix_jax.methods.learned_mixup import LearnedMixPlan, falls_back_to_vanilla
from adamix_jax.mixing import mix
from adamix_jax.models.layers import BatchNorm, conv
from adamix_jax.train_state import EMAOptions, OptimizerOptions, make_optimizer, make_train_state

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "adautomix_step_n2.npz"))
RTOL, ATOL = 1e-5, 1e-6


class TinyBackbone(nn.Module):
  """tests/golden/README.md's stand-in: stem 3->4, "stage3" 4->8 (stride 2), "stage4" 8->16 (stride 2)."""

  inits: models.Init = models.Init()

  @nn.compact
  def __call__(self, images, *, train, stage_hook=None):
    stages = []
    x = images
    for name, features, stride in (("stem", 4, 1), ("s3", 8, 2), ("s4", 16, 2)):
      x = conv(features, 3, stride, init=self.inits, dtype=jnp.float32, name=f"{name}_conv")(x)
      x = nn.relu(BatchNorm(name=f"{name}_bn")(x, train=train))
      stages.append(x)
    return tuple(stages)


def golden_config(tfds_dir, **overrides):
  """The golden run's settings: N = 2, beta 0.3, lam_margin 0.03, SGD 0.1 / 0.9 / 1e-4, EMA fixed at 0.9."""
  settings = {
    "method": "adautomix", "batch_size": 6, "adautomix.num_mix": 2, "generator.feature_stage": 1,
    "optimizer.lr": 0.1, "optimizer.min_lr": 0.1, "optimizer.weight_decay": 1e-4,
    "ema.momentum": 0.9, "ema.end_momentum": 0.9, "eval.report": "ema/one",
  }  # fmt: skip
  return tiny_config(tfds_dir, **{**settings, **overrides})


def torch_to_tree(prefix: str, iteration: str):
  """The golden state `prefix` ("init" or "it0.after", ...) as (params, EMA variables, batch_stats) trees."""

  def get(name):
    return np.asarray(GOLDEN[f"{prefix}.{name}"], np.float32)

  def backbone(side):
    params, stats = {}, {}
    for name in ("stem", "s3", "s4"):
      params[f"{name}_conv"] = {"kernel": get(f"backbone_{side}.{name}.0.weight").transpose(2, 3, 1, 0)}
      params[f"{name}_bn"] = {
        "scale": get(f"backbone_{side}.{name}.1.weight"),
        "bias": get(f"backbone_{side}.{name}.1.bias"),
      }
      if iteration != "grad":
        stats[f"{name}_bn"] = {
          "mean": get(f"backbone_{side}.{name}.1.running_mean"),
          "var": get(f"backbone_{side}.{name}.1.running_var"),
        }
    heads = {
      f"head_{head}": {
        "Dense_0": {"kernel": get(f"head_{head}_{side}.fc.weight").T, "bias": get(f"head_{head}_{side}.fc.bias")}
      }
      for head in ("one", "mix")
    }
    return {"backbone": params, **heads}, {"backbone": stats}

  def projection(name):
    return {"kernel": get(f"mix_block.{name}.weight")[:, :, 0, 0].T, "bias": get(f"mix_block.{name}.bias")}

  generator = {
    "conv_q": {"conv": projection("conv_q.conv")},
    "conv_k": {"conv": projection("conv_k.conv")},
    "conv_v": projection("conv_v"),
  }
  classifier, classifier_stats = backbone("q")
  if iteration == "grad":
    return {"classifier": classifier, "generator": generator}
  teacher, teacher_stats = backbone("k")
  return (
    {"classifier": classifier, "generator": generator},
    {"params": teacher, "batch_stats": teacher_stats},
    {"classifier": classifier_stats},
  )


def recorded_plan(key, step, batch_size, num_mix):
  """The golden run's permutations and lambdas of iteration `step` (N = 2: identity and one shuffle each)."""
  del key, num_mix
  perms, lams = jnp.asarray(GOLDEN["perms"]), jnp.asarray(GOLDEN["lams"], jnp.float32)
  identity = jnp.arange(batch_size)
  index_bb, index_mb = perms[2 * step], perms[2 * step + 1]
  lam_mb, lam_bb = lams[step, 0], lams[step, 1]
  return LearnedMixPlan(
    mb_perms=jnp.stack([identity, index_mb]),
    bb_perms=jnp.stack([identity, index_bb]),
    mb_lams=jnp.stack([lam_mb, 1 - lam_mb]),
    bb_lams=jnp.stack([lam_bb, 1 - lam_bb]),
  )


def _golden_setup(tfds_dir):
  config = golden_config(tfds_dir)
  method = AdAutoMix(AdAutoMix.Options.from_config(config), plan_sampler=recorded_plan)
  classifier = models.Classifier(TinyBackbone(), 5, ("one", "mix"))
  nets = method.make_networks(classifier, (8, 8, 3))
  params, teacher, batch_stats = torch_to_tree("init", "state")
  tx = make_optimizer(OptimizerOptions.from_config(config), params, steps_per_epoch=1)
  state = make_train_state(params, batch_stats, tx, jax.random.key(0)).replace(ema=teacher)
  info = data.DataInfo(5, (8, 8, 3), 6, 6, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  images = jnp.asarray(GOLDEN["img"].transpose(0, 2, 3, 1), jnp.float32)
  batch = {"images": images, "labels": jnp.asarray(GOLDEN["y"], jnp.int32)}
  return config, method, nets, tx, state, info, batch


def _tiny_setup(tfds_dir, method_class=AdAutoMix, plan_sampler=None, **overrides):
  """A learned mixup on TinyBackbone at its initial state, and a batch of 6 random images."""
  config = golden_config(tfds_dir, **overrides)
  method = method_class(method_class.Options.from_config(config), plan_sampler=plan_sampler)
  nets = method.make_networks(models.Classifier(TinyBackbone(), 5, ("one", "mix")), (8, 8, 3))
  params, batch_stats = method.init_variables(nets, jax.random.key(1), jnp.zeros((1, 8, 8, 3)))
  tx = make_optimizer(OptimizerOptions.from_config(config), params, steps_per_epoch=1)
  state = make_train_state(params, batch_stats, tx, jax.random.key(0))
  batch = {"images": jax.random.normal(jax.random.key(2), (6, 8, 8, 3)), "labels": jnp.array([0, 1, 2, 3, 4, 0])}
  return config, method, nets, tx, state, batch


def _assert_tree_matches(actual, expected, what):
  flat_expected = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  for path, value in jax.tree_util.tree_flatten_with_path(actual)[0]:
    np.testing.assert_allclose(
      value, flat_expected[path], rtol=RTOL, atol=ATOL, err_msg=f"{what} {jax.tree_util.keystr(path)}"
    )


def test_two_iterations_reproduce_the_official_step(tfds_dir, monkeypatch):
  config, method, nets, tx, state, info, batch = _golden_setup(tfds_dir)
  # The step normalises uint8 images; the golden images are already normalised tensors.
  monkeypatch.setattr(steps, "normalize", lambda images, mean, std: images)
  mesh = sharding.make_mesh(1)
  train_step = steps.make_train_step(method, nets, tx, EMAOptions.from_config(config), info, mesh, total_steps=100)
  state = jax.device_put(state, sharding.replicated(mesh))
  for t in range(2):
    grads, (_, metrics) = jax.grad(method.loss, argnums=1, has_aux=True)(nets, state.params, state, batch, None)
    _assert_tree_matches(grads, torch_to_tree(f"it{t}.grad", "grad"), f"iteration {t} gradient")
    for name, golden in (
      ("loss", "loss_total"),
      ("cosine", "cos"),
      ("loss_mix_k", "loss_mix_k_raw"),
      ("loss_one", "loss_one_q_reweighted"),
      ("loss_mix_q", "loss_mix_q"),
    ):
      assert float(metrics[name]) == pytest.approx(float(GOLDEN[f"it{t}.{golden}"]), rel=RTOL, abs=ATOL), name
    state, _ = train_step(state, sharding.shard_batch(mesh, {k: np.asarray(v) for k, v in batch.items()}))
    params, teacher, batch_stats = torch_to_tree(f"it{t}.after", "state")
    _assert_tree_matches(state.params, params, f"iteration {t} parameters")
    _assert_tree_matches(state.ema, teacher, f"iteration {t} teacher")
    _assert_tree_matches(state.batch_stats, batch_stats, f"iteration {t} BatchNorm statistics")


def _reference_loss(nets, params, state, batch, plan, config):
  """docs/method.md#adautomix for N >= 3 written out pass by pass, as the original runs it (N clean teacher passes)."""
  options = config.adautomix
  x, y = batch["images"], batch["labels"]
  teacher_params = jax.lax.stop_gradient(state.ema["params"])

  def run(variables_params, stats, images):
    output, updates = nets.classifier.apply(
      {"params": variables_params, "batch_stats": stats}, images, train=True, mutable=["batch_stats"]
    )
    return output, updates["batch_stats"]

  clean, k_stats = run(teacher_params, state.ema["batch_stats"], x)
  features = jax.lax.stop_gradient(clean.stages[config.generator.feature_stage])
  masks = lambda perms, lams: nets.generator.apply({"params": params["generator"]}, features[perms], lams)[1]
  m_mb = masks(plan.mb_perms, plan.mb_lams)
  m_bb = jax.lax.stop_gradient(masks(plan.bb_perms, plan.bb_lams))
  lam1 = plan.bb_lams[0]
  if lam1 <= options.lam_margin or 1 - lam1 < options.lam_margin:
    m_bb = jnp.broadcast_to(plan.bb_lams, m_bb.shape)
  x_mb = sum(m_mb[..., i : i + 1] * x[plan.mb_perms[i]] for i in range(3))
  x_bb = sum(m_bb[..., i : i + 1] * x[plan.bb_perms[i]] for i in range(3))
  mixed_k, k_stats = run(teacher_params, k_stats, x_mb)
  z = mixed_k.logits["mix"]
  loss_mix_k = sum(plan.mb_lams[i] * optax_ce(z, y[plan.mb_perms[i]]) for i in range(3))
  cos = 0.0
  for i in range(3):
    clean_i, k_stats = run(teacher_params, k_stats, x[plan.mb_perms[i]])
    target = jax.lax.stop_gradient(clean_i.logits["mix"])
    cos += plan.mb_lams[i] * jnp.mean(
      jnp.sum(z * target, -1) / (jnp.linalg.norm(z, axis=-1) * jnp.linalg.norm(target, axis=-1))
    )
  one, q_stats = run(params["classifier"], state.batch_stats["classifier"], x)
  vanilla, q_stats = run(params["classifier"], q_stats, sum(plan.bb_lams[i] * x[plan.bb_perms[i]] for i in range(3)))
  mixed_q, q_stats = run(params["classifier"], q_stats, x_bb)
  loss_one = optax_ce(one.logits["one"], y)
  loss_vmix = sum(plan.bb_lams[i] * optax_ce(vanilla.logits["mix"], y[plan.bb_perms[i]]) for i in range(3))
  loss_mix_q = sum(plan.bb_lams[i] * optax_ce(mixed_q.logits["mix"], y[plan.bb_perms[i]]) for i in range(3))
  loss_c = loss_mix_q + 0.5 * loss_one + 0.5 * loss_vmix
  loss_g = -0.3 * loss_mix_k + 0.7 * cos if int(state.step) % 2 == 0 else loss_mix_k
  return loss_c + loss_g, {"classifier": q_stats, "teacher": k_stats}


def optax_ce(logits, labels):
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))


@pytest.mark.slow
@pytest.mark.parametrize("step_index,lam1", [(0, None), (1, None), (0, 0.01)])
def test_three_image_step_matches_the_spec_written_out(tfds_dir, step_index, lam1):
  config, method, nets, _, state, batch = _tiny_setup(tfds_dir, **{"adautomix.num_mix": 3})
  state = state.replace(step=jnp.int32(step_index))
  teacher = jax.tree.map(lambda p: p * 0.9 + 0.01, state.ema["params"])
  state = state.replace(ema={**state.ema, "params": teacher})  # A distinct teacher.
  plan = method.sample_plan(jax.random.key(3), state.step, 6, 3)
  if lam1 is not None:  # lambda_1 below lam_margin: the classifier batch uses constant masks.
    plan = plan.replace(mb_lams=jnp.array([lam1, 0.5, 0.49]), bb_lams=jnp.array([lam1, 0.5, 0.49]))
  assert plan.mb_perms.shape == (3, 6) and float(plan.bb_lams.sum()) == pytest.approx(1.0)
  ours = jax.value_and_grad(lambda p: method.loss_with_plan(nets, p, state, batch, plan), has_aux=True)
  (loss, (stats, _)), grads = ours(state.params)
  (expected_loss, expected_stats), expected_grads = jax.value_and_grad(
    lambda p: _reference_loss(nets, p, state, batch, plan, config), has_aux=True
  )(state.params)
  assert float(loss) == pytest.approx(float(expected_loss), rel=1e-5)
  _assert_tree_matches(grads, expected_grads, "gradient")
  _assert_tree_matches(stats, expected_stats, "BatchNorm statistics")


def test_eight_devices_each_mix_their_shard_and_average_gradients(tfds_dir):
  """With the same plan drawn on every device, one 8-device step = the mean of 8 one-device steps on the shards."""
  same_plan = lambda key, step, batch_size, num_mix: sample_plan(jax.random.key(7), batch_size, num_mix, 1.0)
  overrides = {"batch_size": 48, "adautomix.num_mix": 3}
  config, method, nets, tx, initial, _ = _tiny_setup(tfds_dir, plan_sampler=same_plan, **overrides)
  info = data.DataInfo(5, (8, 8, 3), 48, 48, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
  rng = np.random.default_rng(0)
  batch = {
    "images": rng.integers(0, 256, (48, 8, 8, 3), dtype=np.uint8),
    "labels": rng.integers(0, 5, 48).astype(np.int32),
  }

  def compiled(num_devices):
    mesh = sharding.make_mesh(num_devices)
    train_step = steps.make_train_step(method, nets, tx, EMAOptions.from_config(config), info, mesh, total_steps=100)
    return lambda shard: jax.device_get(
      train_step(
        jax.device_put(jax.tree.map(jnp.copy, initial), sharding.replicated(mesh)), sharding.shard_batch(mesh, shard)
      )[0]
    )

  eight = compiled(8)(batch)
  one_device = compiled(1)
  singles = [one_device({k: v[6 * i : 6 * i + 6] for k, v in batch.items()}) for i in range(8)]
  mean = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *singles)
  for name in ("params", "ema", "batch_stats"):
    _assert_tree_matches(getattr(eight, name), getattr(mean, name), name)


def test_automix_loss_terms_and_generator_gradient_only_through_the_teacher(tfds_dir):
  grads = {}
  for margin in (0.0, 1.0):  # 1.0: the classifier batch always falls back to vanilla mixup.
    overrides = {"mixup.alpha": 2.0, "generator.upsample_mode": "nearest", "automix.lam_margin": margin}
    _, method, nets, _, state, batch = _tiny_setup(tfds_dir, AutoMix, method="automix", **overrides)
    (loss, (stats, metrics)), grads[margin] = jax.value_and_grad(method.loss, argnums=1, has_aux=True)(
      nets, state.params, state, batch, jax.random.key(5)
    )
    parts = metrics["loss_one"] + metrics["loss_mix_q"] + metrics["loss_mix_k"] + metrics["loss_mask"]
    assert float(loss) == pytest.approx(float(parts), rel=1e-6) and float(metrics["loss_mask"]) >= 0
    assert set(stats) == {"classifier", "teacher"}
  # The classifier's masks are detached: how its batch is mixed cannot change the generator's gradient.
  _assert_tree_matches(grads[0.0]["generator"], grads[1.0]["generator"], "generator gradient")
  assert any(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(grads[0.0]["generator"]))
  with pytest.raises(AssertionError):
    _assert_tree_matches(grads[0.0]["classifier"], grads[1.0]["classifier"], "classifier gradient")


def test_random_num_mixes_two_or_three_images_per_iteration(tfds_dir):
  _, method, nets, _, state, batch = _tiny_setup(tfds_dir, **{"adautomix.num_mix": 3, "adautomix.random_num": True})
  loss_fn = jax.jit(lambda key: method.loss(nets, state.params, state, batch, key))
  seen = set()
  for seed in range(8):
    key = jax.random.key(seed)
    loss, (_, metrics) = loss_fn(key)
    num_key, plan_key = jax.random.split(key)
    num = 2 + int(jax.random.randint(num_key, (), 0, 2))
    plan = method.sample_plan(plan_key, state.step, 6, num)
    expected, _ = method.loss_with_plan(nets, state.params, state, batch, plan)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert (float(metrics["loss_vmix"]) > 0) == (num == 3)
    seen.add(num)
  assert seen == {2, 3}


def test_automix_draws_independent_pairs_for_the_mix_block_and_the_classifier():
  """The official forward_train shuffles twice (classifier first, then Mix Block) and draws two lambdas."""
  plans = [automix.sample_plan(jax.random.key(seed), 32, alpha=2.0) for seed in range(20)]
  for plan in plans:
    identity = np.arange(32)
    assert np.array_equal(plan.mb_perms[0], identity) and np.array_equal(plan.bb_perms[0], identity)
    assert sorted(np.asarray(plan.mb_perms[1])) == list(identity)
    np.testing.assert_allclose(np.sum(plan.mb_lams), 1.0, rtol=1e-6)
  assert sum(np.array_equal(p.mb_perms[1], p.bb_perms[1]) for p in plans) == 0
  assert sum(float(p.mb_lams[0]) == float(p.bb_lams[0]) for p in plans) == 0


@pytest.mark.parametrize("num_mix,lam,expected", [(2, 0.25, True), (2, 0.75, True), (2, 0.3, False), (3, 0.75, False)])
def test_lam_margin_fallback_includes_the_boundary_as_the_official_code(num_mix, lam, expected):
  """lam <= margin or 1 - lam <= margin (AutoMix, AdAutoMix N = 2); AdAutoMix N >= 3 has 1 - lam < margin."""
  assert bool(falls_back_to_vanilla(jnp.float32(lam), 0.25, num_mix)) == expected


@pytest.mark.parametrize("lam_bb,vanilla", [(0.25, True), (0.75, True), (0.5, False)])
def test_automix_classifier_batch_at_the_margin_is_vanilla_mixup(tfds_dir, lam_bb, vanilla):
  def plan_with(key, step, batch_size, num_mix):
    plan = automix.sample_plan(jax.random.key(3), batch_size, alpha=2.0)
    return plan.replace(bb_lams=jnp.array([lam_bb, 1 - lam_bb]))

  overrides = {"automix.lam_margin": 0.25, "generator.upsample_mode": "nearest"}
  _, method, nets, _, state, batch = _tiny_setup(tfds_dir, AutoMix, plan_with, method="automix", **overrides)
  plan = method.sample_plan(None, state.step, 6, 2)
  generated = method.generate(nets, state.params, state, batch["images"], plan)
  constant = mix(batch["images"], plan.bb_perms, plan.bb_lams)
  assert np.allclose(generated.mixed_bb, constant) == vanilla
