"""Co-Mixup against the authors' code itself: `mixup_process` and `match.py` run with PyTorch and GCO's graph cut
(tests/golden/make_comixup.py made tests/golden/comixup.npz); its loss, its clean pass and the method's step."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import tiny_config, tiny_run

from adamix_jax import comixup, graph_cut, methods, models, sharding
from adamix_jax.config import ConfigError

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "comixup.npz"))
CASES = sorted({key.split(".")[0] for key in GOLDEN.files if key.startswith("case")})
CUTS = sorted({key.split(".")[0] for key in GOLDEN.files if key.startswith("cut")}, key=lambda name: int(name[3:]))
MIXED_LABEL_COSTS = np.array([[0.25, 0.25, 1], [0.25, 1, 0.25], [1, 0.25, 0.25]])  # The reference's, for 3 inputs.


def _case(name):
  return {key.split(".", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + ".")}


def _options(settings):
  blocks, part, iterations, resolve, soft, _ = (int(x) for x in settings)
  thres_type = "soft" if soft else "hard"
  return comixup.CoMixupOptions.defaults(
    blocks=blocks, part=part, iterations=iterations, resolve=bool(resolve), thres_type=thres_type
  )


def _groups(case):
  """(slice, mask) of each group the reference mixed, in order."""
  batch, part = len(case["labels"]), int(case["settings"][1])
  return [(slice(s, min(s + part, batch)), case[f"mask{g}"]) for g, s in enumerate(range(0, batch, part))]


def test_the_golden_file_covers_the_settings_and_every_kind_of_cut():
  cases = [_case(name) for name in CASES]
  assert {int(c["settings"][0]) for c in cases} == {2, 4, 8}  # Grids of 2, 4 and 8 blocks a side.
  assert {int(c["settings"][4]) for c in cases} == {0, 1}  # Hard and soft thresholds.
  assert {int(c["settings"][3]) for c in cases} == {0, 1}  # With and without resolving equal outputs.
  assert any(len(c["labels"]) % int(c["settings"][1]) for c in cases)  # A smaller last group.
  assert any(int(c["settings"][1]) == 20 for c in cases)  # The authors' groups of 20.
  assert sum(int(c["settings"][5]) for c in cases) > 10  # torch.topk ties decided by the lowest index.
  assert {int(GOLDEN[f"{name}.kind"]) for name in CUTS} == {0, 2, 3}
  values = np.concatenate([mask.ravel() for c in cases for _, mask in _groups(c)])
  assert set(np.unique(values)) == {0.0, 0.5, 1.0}


@pytest.mark.parametrize("name", CUTS)
def test_swap_labelling_equals_gco_on_the_references_cuts(name):
  """GCO's own swap (float costs scaled as pyGCO scales them) on the cuts the reference made: 2 to 23 labels."""
  cost, kind, chosen, labels = (GOLDEN[f"{name}.{key}"] for key in ("cost", "kind", "add_idx", "labels"))
  height, width, count = cost.shape
  label_cost = 1 - np.eye(count, dtype=np.float32)
  if kind == 2:  # One label half-way between two inputs.
    label_cost[-1, :-1][chosen] = label_cost[:-1, -1][chosen] = 0.25
  elif kind == 3:  # Three, between the pairs of three inputs.
    label_cost[-3:, :-3][:, chosen] = MIXED_LABEL_COSTS
    label_cost[:-3, -3:][chosen, :] = MIXED_LABEL_COSTS
  edge = (np.float32(0.32 / height / width) * 1000).astype(np.int32)
  ours = graph_cut.swap_labelling(
    jnp.asarray((cost * 100000).astype(np.int32)),
    jnp.full((height - 1, width), edge),
    jnp.full((height, width - 1), edge),
    jnp.asarray((label_cost * 100).astype(np.int32)),
  )
  np.testing.assert_array_equal(np.asarray(ours).ravel(), labels.ravel())


@pytest.mark.parametrize("name", CASES)
def test_labellings_and_mixed_batches_equal_the_reference(name):
  case = _case(name)
  options = _options(case["settings"])
  saliency = jnp.asarray(case["saliency"])
  distances = comixup.compatibility(saliency)
  np.testing.assert_array_equal(np.asarray(distances), case["a_dist"])
  cost = -comixup.block_shares(saliency, options.blocks)
  images = jnp.asarray(case["images"].transpose(0, 2, 3, 1), jnp.float32)
  assign = jax.jit(comixup.assign, static_argnums=4)
  for group, reference in _groups(case):
    compat = comixup.compatibility_matrix(distances[group, group], options.omega)
    prior, init = jnp.asarray(case["prior"][group]), jnp.asarray(case["init"][group])
    mask = assign(cost[group], compat, prior, init, options)
    np.testing.assert_array_equal(np.asarray(mask), reference)
    mixed, lams, weight = comixup.mix_group(images[group], mask)
    np.testing.assert_array_equal(mixed, case["mixed"][group].transpose(0, 2, 3, 1))
    target = np.einsum("kb,kc->bc", lams, np.eye(7)[case["labels"][group]])
    np.testing.assert_allclose(target, case["target"][group], rtol=1e-6)
    assert weight.shape == (*mixed.shape[:3], lams.shape[0])


def test_the_hard_threshold_keeps_the_references_operator_precedence():
  """`(A @ p > t).float() * A @ p` is ((A @ p > t) * A) @ p: input j's term counts where input j is over t."""
  compat = jnp.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.5, 0.5]])
  others = jnp.array([10.0, 1.0, 4.0])
  used = compat @ others  # [9.1, 2.8, 2.5]: only input 0 over 3.
  penalty = comixup.modular_penalty(compat, others, gamma=0.5, thres=3.0, thres_type="hard")
  np.testing.assert_allclose(penalty, [9.0, 2.0, 0.0], rtol=1e-6)  # Not 2γ(used > t) used = [9.1, 0, 0].
  soft = comixup.modular_penalty(compat, others, gamma=0.5, thres=3.0, thres_type="soft")
  np.testing.assert_allclose(soft, [used[0] - 3.0, 0.0, 0.0], rtol=1e-6)


def test_resolving_pushes_apart_outputs_with_the_same_inputs():
  one_hot = np.eye(4, dtype=np.float32)
  # Outputs 0 and 2 use inputs {1, 3}; output 1 uses {2} alone; output 3 uses {0, 1}.
  mask = np.stack([one_hot[[1, 3, 3, 1]], one_hot[[2, 2, 2, 2]], one_hot[[3, 3, 1, 1]], one_hot[[0, 1, 1, 1]]])
  add = comixup.resolve_costs(jnp.asarray(mask.reshape(4, 2, 2, 4)))
  expected = np.zeros((4, 4))
  expected[0, 1] = expected[2, 3] = 1  # The first of the pair loses its first input, the second its second.
  np.testing.assert_array_equal(add, expected)


def test_the_batch_is_mixed_in_groups_with_a_smaller_last_one():
  options = comixup.CoMixupOptions.defaults(part=4)
  images = jax.random.normal(jax.random.key(0), (10, 16, 16, 3))
  labels = jnp.arange(10) + 20
  centres = jax.random.uniform(jax.random.key(1), (10, 2), maxval=16)
  grid = jnp.stack(jnp.meshgrid(jnp.arange(16), jnp.arange(16), indexing="ij"), -1)
  saliency = jnp.exp(-((grid - centres[:, None, None]) ** 2).sum(-1) / 8)  # One blob each, as gradients are.
  mixed = jax.jit(comixup.mix, static_argnums=(4, 5))(images, labels, saliency, jax.random.key(2), 2.0, options)
  assert mixed.images.shape == images.shape and mixed.labels.shape == mixed.lams.shape == (4, 10)
  assert mixed.masks.shape == (10, 16, 16, 4)
  np.testing.assert_allclose(mixed.lams.sum(0), 1.0, rtol=1e-6)
  np.testing.assert_allclose(mixed.masks.sum(-1), 1.0, rtol=1e-6)
  for output in range(10):  # Each output mixes images of its own group only (8 and 9: the last, of 2).
    group = output // 4
    sources = np.asarray(mixed.labels[:, output])[np.asarray(mixed.lams[:, output]) > 0]
    assert set(sources) <= set(range(20 + 4 * group, 20 + min(4 * group + 4, 10)))
    weights = np.asarray(mixed.masks[output]).reshape(-1, 4)
    members = images[4 * group : 4 * group + 4]
    rebuilt = np.einsum("pk,kpc->pc", weights[:, : len(members)], np.asarray(members).reshape(len(members), -1, 3))
    np.testing.assert_allclose(np.asarray(mixed.images[output]).reshape(-1, 3), rebuilt, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(mixed.lams[2:, 8:], 0.0)  # The last group's missing sources weigh nothing.
  # The outputs of a group differ (the diversity term), and some mix several images.
  for group in (0, 1):
    assert len({tuple(np.asarray(mixed.lams[:, o]).round(3)) for o in range(4 * group, 4 * group + 4)}) == 4
  assert np.any((np.asarray(mixed.lams) > 0).sum(0) >= 2)


def test_the_loss_is_pytorchs_bce_of_the_softmax():
  logits = np.array([[2.0, -1.0, 0.5], [200.0, 0.0, -3.0]], np.float32)  # The second: log(p) = -inf, clamped.
  targets = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], np.float32)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  with np.errstate(divide="ignore"):
    log_p, log_not_p = np.maximum(np.log(probs), -100), np.maximum(np.log(1 - probs), -100)  # PyTorch's clamp.
  expected = -np.mean(targets * log_p + (1 - targets) * log_not_p)
  assert float(methods.comixup.softmax_binary_cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-6)


def _method(**changes):
  options = methods.CoMixup.Options.defaults()
  return methods.CoMixup(dataclasses.replace(options, comixup=dataclasses.replace(options.comixup, **changes)))


def test_the_clean_pass_gives_the_clean_loss_its_saliency_and_statistics():
  method = _method(part=4)
  classifier = models.make_classifier("cifar_resnet18", num_classes=10, head_names=("one",), width=4)
  nets = method.make_networks(classifier, (32, 32, 3))
  images = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
  labels = jnp.arange(8) % 10
  variables = classifier.init(jax.random.key(1), images, train=False)
  loss, saliency, stats = method.clean_pass(nets, variables, images, labels, None)

  def clean(x):
    output, updates = classifier.apply(variables, x, train=True, mutable=["batch_stats"])
    return 2 * method.cross_entropy(output.logits["one"], labels) / 10, updates["batch_stats"]

  (expected, expected_stats), gradient = jax.value_and_grad(clean, has_aux=True)(images)
  assert float(loss) == pytest.approx(float(expected), rel=1e-6)
  np.testing.assert_allclose(saliency, jnp.sqrt(jnp.mean(gradient**2, -1)), rtol=1e-5, atol=1e-12)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), stats, expected_stats)
  # clean_lam = 0: no clean term, the saliency of an eval-mode pass, the statistics untouched.
  loss, saliency, stats = _method(clean_lam=0.0).clean_pass(nets, variables, images, labels, None)
  assert float(loss) == 0.0 and float(saliency.max()) > 0
  jax.tree.map(np.testing.assert_array_equal, stats, variables["batch_stats"])
  with pytest.raises(ValueError, match="mixes by saliency"):
    method.mix(images, labels, jax.random.key(2))


def test_a_step_adds_the_clean_and_mixed_losses(tfds_dir):
  from adamix_jax import data

  config = tiny_config(tfds_dir, method="comixup", batch_size=8, **{"comixup.part": 4})
  batch = next(data.InputPipeline(config, data.data_info(config)).train_batches(0))
  mesh, _, state, train_step = tiny_run(config)
  state, metrics = train_step(state, sharding.shard_batch(mesh, batch))
  assert float(metrics["loss"]) == pytest.approx(float(metrics["clean_loss"] + metrics["mixed_loss"]), rel=1e-5)
  assert 0 < float(metrics["clean_loss"]) and 0 < float(metrics["mixed_loss"]) < 1
  assert 0 <= float(metrics["accuracy"]) <= 1


@pytest.mark.parametrize(
  ("changes", "shape", "message"),
  [
    ({}, (30, 30, 3), "blocks = 4 does not divide the 30-pixel images"),
    ({"blocks": 2}, (6, 6, 3), "images of 6 pixels are too small"),
    ({}, (32, 28, 3), "needs square images, not 32x28"),
    ({"blocks": 16}, (32, 32, 3), "must be an integer from 2 to 10"),
    ({"part": 1}, (32, 32, 3), "config.comixup.part = 1 must be >= 2"),
  ],
)
def test_images_the_options_do_not_suit_are_refused_in_one_line(changes, shape, message):
  with pytest.raises(ConfigError, match=message):
    _method(**changes).make_networks(models.make_classifier("cifar_resnet18", 10, ("one",), width=4), shape)
