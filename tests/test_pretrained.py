"""torchvision weights -> our backbones: checked against an independent NCHW forward of torchvision's ResNet."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import torchvision_state
from jax import lax

from adamix_jax.models import pretrained
from adamix_jax.models.resnet import BasicBlock, Bottleneck, ResNet


def _torchvision_forward(state, x, bottleneck: bool, stage_sizes, groups: int):
  """torchvision's ResNet.forward up to layer4, eval mode, in NCHW / OIHW as PyTorch computes it."""

  def conv(x, key, stride=1, feature_groups=1):
    weight = state[key]
    pad = weight.shape[-1] // 2
    return lax.conv_general_dilated(
      x, weight, (stride, stride), [(pad, pad)] * 2, dimension_numbers=("NCHW", "OIHW", "NCHW"),
      feature_group_count=feature_groups, precision=lax.Precision.HIGHEST,
    )  # fmt: skip

  def bn(x, key):
    scale = state[f"{key}.weight"] / np.sqrt(state[f"{key}.running_var"] + 1e-5)
    shift = state[f"{key}.bias"] - state[f"{key}.running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]

  x = jax.nn.relu(bn(conv(x, "conv1.weight", 2), "bn1"))
  x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 3, 3), (1, 1, 2, 2), [(0, 0), (0, 0), (1, 1), (1, 1)])
  for stage, blocks in enumerate(stage_sizes, start=1):
    for index in range(blocks):
      prefix, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
      if bottleneck:
        y = jax.nn.relu(bn(conv(x, f"{prefix}.conv1.weight"), f"{prefix}.bn1"))
        y = jax.nn.relu(bn(conv(y, f"{prefix}.conv2.weight", stride, groups), f"{prefix}.bn2"))
        y = bn(conv(y, f"{prefix}.conv3.weight"), f"{prefix}.bn3")
      else:
        y = jax.nn.relu(bn(conv(x, f"{prefix}.conv1.weight", stride), f"{prefix}.bn1"))
        y = bn(conv(y, f"{prefix}.conv2.weight"), f"{prefix}.bn2")
      if f"{prefix}.downsample.0.weight" in state:
        x = bn(conv(x, f"{prefix}.downsample.0.weight", stride), f"{prefix}.downsample.1")
      x = jax.nn.relu(x + y)
  return x


@pytest.mark.slow
@pytest.mark.parametrize(
  "bottleneck,stage_sizes,width,groups,width_per_group",
  [(False, (2, 2, 2, 2), 8, 1, 64), (True, (2, 1, 1, 1), 16, 4, 4)],
  ids=["resnet18_layout", "resnext_layout"],
)
def test_loaded_backbone_computes_what_torchvision_computes(
  tmp_path, bottleneck, stage_sizes, width, groups, width_per_group
):
  rng = np.random.default_rng(0)
  state = torchvision_state(rng, bottleneck, stage_sizes, width, groups, width_per_group)
  path = str(tmp_path / "weights.npz")
  np.savez(path, **state)
  block = Bottleneck if bottleneck else BasicBlock
  extra = dict(groups=groups, width_per_group=width_per_group) if bottleneck else {}
  model = ResNet(block, stage_sizes, "imagenet", width, **extra)
  images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), images)
  params, stats = pretrained.load_torchvision(path, variables["params"], variables["batch_stats"])
  with jax.default_matmul_precision("highest"):
    ours = jax.jit(functools.partial(model.apply, train=False))({"params": params, "batch_stats": stats}, images)[-1]
  reference = _torchvision_forward(state, images.transpose(0, 3, 1, 2), bottleneck, stage_sizes, groups)
  np.testing.assert_allclose(ours, np.asarray(reference).transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_mismatched_weights_are_named(tmp_path):
  rng = np.random.default_rng(0)
  state = torchvision_state(rng, False, (2, 2, 2, 2), 8, 1, 64)
  model = ResNet(BasicBlock, (2, 2, 2, 2), "imagenet", 16)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), np.zeros((1, 32, 32, 3)))
  np.savez(tmp_path / "narrow.npz", **state)
  with pytest.raises(pretrained.PretrainedMismatchError, match=r"conv1.weight \(8, 3, 7, 7\) -> stem_conv/kernel"):
    pretrained.load_torchvision(str(tmp_path / "narrow.npz"), variables["params"], variables["batch_stats"])
  model = ResNet(BasicBlock, (2, 2, 2, 2), "imagenet", 8)
  variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), np.zeros((1, 32, 32, 3)))
  del state["layer4.1.bn2.running_var"]
  np.savez(tmp_path / "partial.npz", **state)
  with pytest.raises(pretrained.PretrainedMismatchError, match="stage4_block2/BatchNorm_1/var"):
    pretrained.load_torchvision(str(tmp_path / "partial.npz"), variables["params"], variables["batch_stats"])
