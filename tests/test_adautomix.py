"""AdAutoMix: two official iterations reproduced exactly (golden), N = 3 from the spec, 8 devices."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from adamix_jax import data, models, step
from adamix_jax.methods.adautomix import AdAutoMix, AdAutoMixPlan
from adamix_jax.models.layers import BatchNorm, conv
from adamix_jax.train_state import build_optimizer, create_train_state

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "adautomix_step_n2.npz"))
RTOL, ATOL = 1e-5, 1e-6


class TinyBackbone(nn.Module):
  """../shared/golden/README.md's stand-in: stem 3->4, "stage3" 4->8 (stride 2), "stage4" 8->16 (stride 2)."""

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
  """The golden state `prefix` ("init" or "it0.after", ...) as (params, ema_params, batch_stats) trees."""

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
    teacher,
    {"classifier": classifier_stats, "teacher": teacher_stats},
  )


class RecordedAdAutoMix(AdAutoMix):
  """AdAutoMix with the golden run's permutations and lambdas injected by step (A.2's N = 2 layout)."""

  def sample_plan(self, key, batch_size):
    del key
    perms, lams = jnp.asarray(GOLDEN["perms"]), jnp.asarray(GOLDEN["lams"], jnp.float32)
    t = self.current_step
    identity = jnp.arange(batch_size)
    index_bb, index_mb = perms[2 * t], perms[2 * t + 1]
    lam_mb, lam_bb = lams[t, 0], lams[t, 1]
    return AdAutoMixPlan(
      mb_perms=jnp.stack([identity, index_mb]),
      bb_perms=jnp.stack([identity, index_bb]),
      mb_lams=jnp.stack([lam_mb, 1 - lam_mb]),
      bb_lams=jnp.stack([lam_bb, 1 - lam_bb]),
    )

  def loss(self, nets, params, state, batch, rng):
    self.current_step = state.step
    return super().loss(nets, params, state, batch, rng)


def _golden_setup(tfds_dir):
  config = golden_config(tfds_dir)
  method = RecordedAdAutoMix(config)
  classifier = models.Classifier(TinyBackbone(), 5, ("one", "mix"))
  nets = method.build_networks(classifier, (8, 8, 3))
  params, teacher, batch_stats = torch_to_tree("init", "state")
  tx = build_optimizer(config, params, steps_per_epoch=1)
  state = create_train_state(params, batch_stats, tx, jax.random.key(0)).replace(ema_params=teacher)
  info = data.DataInfo(5, (8, 8, 3), 6, 6, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
  images = jnp.asarray(GOLDEN["img"].transpose(0, 2, 3, 1), jnp.float32)
  batch = {"images": images, "labels": jnp.asarray(GOLDEN["y"], jnp.int32)}
  return config, method, nets, tx, state, info, batch


def _assert_tree_matches(actual, expected, what):
  flat_expected = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
  for path, value in jax.tree_util.tree_flatten_with_path(actual)[0]:
    np.testing.assert_allclose(
      value, flat_expected[path], rtol=RTOL, atol=ATOL, err_msg=f"{what} {jax.tree_util.keystr(path)}"
    )


def test_two_iterations_reproduce_the_official_step(tfds_dir, monkeypatch):
  config, method, nets, tx, state, info, batch = _golden_setup(tfds_dir)
  # The step normalises uint8 images; the golden images are already normalised tensors.
  monkeypatch.setattr(step, "normalize", lambda images, mean, std: images)
  mesh = step.make_mesh(1)
  train_step = step.make_train_step(method, nets, tx, config, info, mesh, total_steps=100)
  state = step.replicate(mesh, state)
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
    state, _ = train_step(state, step.shard_batch(mesh, {k: np.asarray(v) for k, v in batch.items()}))
    params, teacher, batch_stats = torch_to_tree(f"it{t}.after", "state")
    _assert_tree_matches(state.params, params, f"iteration {t} parameters")
    _assert_tree_matches(state.ema_params, teacher, f"iteration {t} teacher")
    _assert_tree_matches(state.batch_stats, batch_stats, f"iteration {t} BatchNorm statistics")
