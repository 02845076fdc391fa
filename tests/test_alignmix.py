"""AlignMix against the reference itself (OpenMixup's `alignmix` run with PyTorch: tests/golden/make_alignmix.py
made tests/golden/alignmix.npz), and the method's draws, passes and refusals."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import alignmix, methods, mixing, models
from adamix_jax.config import ConfigError

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "alignmix.npz"))
CASES = sorted({key.split("_")[0] for key in GOLDEN.files})


def _case(name):
  case = {key.split("_", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + "_")}
  lam, eps, max_iter = case["settings"]
  nhwc = {key: case[key].transpose(0, 2, 3, 1) for key in ("feat1", "feat2", "mixed0", "mixed1")}
  return nhwc, case["plan"], int(case["iterations"]), float(lam), float(eps), int(max_iter)


def test_the_golden_cases_stop_by_tolerance_and_by_the_iteration_cap():
  stops = [(_case(name)[2], _case(name)[5]) for name in CASES]
  assert any(iterations < cap for iterations, cap in stops) and any(iterations == cap for iterations, cap in stops)
  assert len({iterations for iterations, _ in stops}) >= 4


@pytest.mark.parametrize("name", CASES)
def test_plan_iterations_and_both_directions_equal_the_reference(name):
  maps, plan, iterations, lam, eps, max_iter = _case(name)
  batch, height, width, channels = maps["feat1"].shape
  points = lambda x: jnp.asarray(x).reshape(batch, height * width, channels)
  ours, ran = jax.jit(alignmix.sinkhorn_plan, static_argnums=(2, 3))(
    points(maps["feat1"]), points(maps["feat2"]), eps, max_iter
  )
  assert int(ran) == iterations
  # float32 on both sides: a rounding of the cost (one ulp of the largest, a few of them summed) moves
  # exp(-cost / eps) by ulp / eps of itself — 1e-4 for costs near 200.
  differences = maps["feat1"].reshape(batch, -1, 1, channels) - maps["feat2"].reshape(batch, 1, -1, channels)
  cost = np.sum(differences**2, -1)
  rtol = max(1e-5, 4 * float(np.spacing(np.float32(cost.max()))) / eps)
  np.testing.assert_allclose(ours, plan, rtol=rtol, atol=1e-6 * plan.max())
  for direction in (0, 1):
    mixed = alignmix.align_mix(
      jnp.asarray(maps["feat1"]), jnp.asarray(maps["feat2"]), lam, jnp.int32(direction), eps, max_iter
    )
    expected = maps[f"mixed{direction}"]
    np.testing.assert_allclose(mixed, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


def test_gradients_reach_both_maps_but_not_the_plan():
  own = jax.nn.relu(jax.random.normal(jax.random.key(0), (3, 4, 4, 8)))
  partner = jax.nn.relu(jax.random.normal(jax.random.key(1), (3, 4, 4, 8)))
  plan, _ = alignmix.sinkhorn_plan(own.reshape(3, 16, 8), partner.reshape(3, 16, 8), 0.1, 100)
  lam = 0.3

  def total(own, partner):
    return jnp.sum(alignmix.align_mix(own, partner, lam, jnp.int32(0), 0.1, 100))

  d_own, d_partner = jax.grad(total, argnums=(0, 1))(own, partner)
  np.testing.assert_allclose(d_own, jnp.full_like(own, lam), rtol=1e-6)
  # Partner position j reaches every own position i with weight 16 * plan[i, j]: its column sum.
  received = (1 - lam) * 16 * plan.sum(axis=1).reshape(3, 4, 4, 1)
  np.testing.assert_allclose(d_partner, jnp.broadcast_to(received, partner.shape), rtol=1e-4)


def _method(**align_changes):
  options = methods.AlignMix.Options.defaults()
  return methods.AlignMix(dataclasses.replace(options, align=dataclasses.replace(options.align, **align_changes)))


def test_the_draws_split_evenly_between_alignmix_and_its_alternate_and_between_directions():
  method = _method(alternate="mixup")
  keys = jax.random.split(jax.random.key(0), 400)
  _, aligned, direction = jax.vmap(lambda key: method.draw(key, 8))(keys)
  assert 160 < int(aligned.sum()) < 240 and 160 < int(direction.sum()) < 240  # Binomial(400, 1/2): 4 sigma.
  _, always, _ = jax.vmap(lambda key: _method(alternate="none").draw(key, 8))(keys)
  assert bool(always.all())


@pytest.mark.parametrize("alternate", ["mixup", "manifoldmix"])
def test_each_step_runs_alignmix_on_the_heads_input_or_else_its_alternate(alternate):
  method = _method(alternate=alternate)
  classifier = models.make_classifier("cifar_resnet18", num_classes=10, width=4)
  images = jax.random.normal(jax.random.key(0), (6, 16, 16, 3))
  labels = jnp.arange(6) % 10
  variables = classifier.init(jax.random.key(1), images, train=False)
  nets = method.make_networks(classifier, (16, 16, 3))
  forward = jax.jit(lambda key: method.forward(nets, variables, {"images": images, "labels": labels}, key, key))

  def logits_of(images, **hooks):
    return classifier.apply(variables, images, train=True, mutable=["batch_stats"], **hooks)[0].logits["one"]

  def aligned_logits(plan, direction):
    def hook(features):
      partner = features[plan.permutation]
      return alignmix.align_mix(features, partner, plan.lam, direction, method.options.align.eps, 100)

    return logits_of(images, head_hook=hook)

  def manifold_logits(plan, stage):
    return logits_of(images, stage_hook=lambda k, x: jnp.where(k == stage, mixing.mixup(x, labels, plan).images, x))

  seen = set()
  for seed in range(6):
    key = jax.random.key(seed)
    plan, aligned, direction = method.draw(key, 6)
    logits, mixed_labels, lams, _ = forward(key)
    if bool(aligned):
      expected = aligned_logits(plan, direction)
    elif alternate == "mixup":
      expected = logits_of(mixing.mixup(images, labels, plan).images)
    else:  # ManifoldMix draws its stage from the pass's key: the logits are one of the stages'.
      candidates = [manifold_logits(plan, stage) for stage in (0, 1, 2)]
      expected = min(candidates, key=lambda candidate: float(jnp.abs(candidate - logits).max()))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(mixed_labels, jnp.stack([labels, labels[plan.permutation]]))
    np.testing.assert_allclose(lams[0], plan.lam, rtol=1e-6)  # The draw jitted and eagerly: an ulp apart.
    np.testing.assert_allclose(lams.sum(0), 1.0, rtol=1e-6)
    seen.add(bool(aligned))
  assert seen == {True, False}


@pytest.mark.parametrize(
  ("backbone", "architecture", "alternate", "message"),
  [
    ("deit_s", {"width": 48}, "mixup", "DeiT-S's heads read its class token"),
    ("convnext_t_cifar", {"width": 24}, "mixup", "set config.model.norm_before_pool = True"),
    ("swin_t", {"width": 24}, "manifoldmix", "set it to 'mixup'"),
  ],
)
def test_backbones_whose_heads_read_no_feature_map_are_refused_in_one_line(backbone, architecture, alternate, message):
  classifier = models.make_classifier(backbone, 10, **architecture)
  with pytest.raises(ConfigError, match=message):
    _method(alternate=alternate).make_networks(classifier, (32, 32, 3))


def test_convnext_can_hand_its_heads_the_normed_map():
  """norm_before_pool: the same parameters; the heads pool the map normed at each position."""
  images = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  pooled = models.make_classifier("convnext_t_cifar", 10, width=8)
  mapped = models.make_classifier("convnext_t_cifar", 10, width=8, norm_before_pool=True)
  variables = pooled.init(jax.random.key(1), images, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(mapped.init(jax.random.key(1), images, train=False))
  by_pooling, by_map = (net.apply(variables, images, train=False) for net in (pooled, mapped))
  assert by_pooling.stages[-1].shape == (2, 1, 1, 64) and by_map.stages[-1].shape == (2, 4, 4, 64)
  np.testing.assert_allclose(by_map.stages[-2], by_pooling.stages[-2])
  assert not np.allclose(by_map.logits["one"], by_pooling.logits["one"])
  _method(alternate="mixup").make_networks(mapped, (32, 32, 3))  # Accepted.
  with pytest.raises(ValueError, match="applies to convnext_t, convnext_t_cifar, not cifar_resnet18"):
    models.make_classifier("cifar_resnet18", 10, norm_before_pool=True)
