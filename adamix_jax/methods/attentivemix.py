"""AttentiveMix+ (Walawalkar et al., ICASSP 2020, with OpenMixup's lambda-driven cell count; as OpenMixup's
`attentivemix` runs it; docs/method.md#attentivemix).

Per step, on each device's shard:

  1. the frozen network (`attentivemix.pretrained`: torchvision ImageNet weights, or a run of this library)
     looks at the batch resized to `attentivemix.input_size` (bilinear), in train mode as the reference runs
     it (BatchNorm normalises with the batch's own statistics; nothing is updated); the channel mean of its
     last feature map is each image's attention grid;
  2. a draw: the partners and lam ~ Beta(alpha, alpha);
  3. each image keeps its floor(cells x lam) most attended cells (`attentivemix.top_k` fixes the count) and
     takes the rest from its partner (`attentivemix.mix`); the classifier trains on the result with the
     mixup cross-entropy (or DM).

The network's variables live in the state's batch_stats as the group "frozen": read from the file when a
run starts, saved with every checkpoint (a resumed run goes on with the network it started with, whatever
the file holds now), never updated.
"""

import dataclasses
import os

import jax
import jax.numpy as jnp

from adamix_jax import attentivemix as attentive_ops
from adamix_jax import config as config_lib
from adamix_jax import mixing, models
from adamix_jax.checkpointing import Checkpoints
from adamix_jax.config import ConfigError
from adamix_jax.methods.base import Networks
from adamix_jax.methods.static_mixup import StaticMixup, StaticMixupOptions
from adamix_jax.models import pretrained
from adamix_jax.options import option

FROZEN = "frozen"  # The batch_stats group of the attending network's variables.


@dataclasses.dataclass(frozen=True)
class AttentiveMixOptions(StaticMixupOptions):
  """A static mixup's options (`mixup.alpha` is lam's) and AttentiveMix+'s own (`config.attentivemix`)."""

  attentive: attentive_ops.AttentiveMixOptions = option("attentivemix")


def _saved_run(workdir: str, state: bool = False) -> tuple:
  """(the model options, with `state` the saved state as nested dicts, else None) of the latest checkpoint of
  the run in `workdir`."""
  checkpoints = Checkpoints(workdir, read_only=True)
  try:
    step = checkpoints.latest_step()
    if step is None:
      raise ConfigError(f"config.attentivemix.pretrained = {workdir!r} holds no checkpoint: train that run first.")
    config = config_lib.from_saved(checkpoints.read_meta(step)["config"])
    return models.ModelOptions.from_config(config), checkpoints.restore_tree(step) if state else None
  finally:
    checkpoints.close()


class AttentiveMix(StaticMixup):
  """AttentiveMix+ (options: AttentiveMixOptions; OpenMixup's settings are base_config()'s)."""

  name = "attentivemix"
  reads_network_file = True
  Options = AttentiveMixOptions

  @property
  def _from_run(self) -> bool:
    return os.path.isdir(self.options.attentive.pretrained)

  def make_networks(self, classifier, image_shape):
    """The classifier and the frozen attending backbone: the .npz's `attentivemix.backbone`, or the saved
    run's backbone."""
    if self._from_run:
      saved, _ = _saved_run(self.options.attentive.pretrained)
      frozen = models.make_backbone(**saved.architecture(), init=saved.init)
    else:
      frozen = models.make_backbone(self.options.attentive.backbone)
    return Networks(classifier, frozen=frozen)

  def network_input(self, images: jax.Array) -> jax.Array:
    """The batch [B, H, W, C] as the frozen network sees it: bilinear to `input_size` (0: unchanged), and
    grey images repeated to three channels for a torchvision (colour) network."""
    if images.shape[-1] == 1 and not self._from_run:
      images = jnp.repeat(images, 3, axis=-1)
    size = self.options.attentive.input_size
    if not size or images.shape[1:3] == (size, size):
      return images
    return jax.image.resize(images, (images.shape[0], size, size, images.shape[3]), "linear", antialias=False)

  def init_variables(self, nets, rng, images):
    params, batch_stats = super().init_variables(nets, rng, images)
    frozen = nets.frozen.init(jax.random.fold_in(rng, 1), self.network_input(images), train=False)
    return params, {**batch_stats, FROZEN: dict(frozen)}

  def load_variables(self, abstract_stats):
    """The attending network's variables: from the torchvision .npz, or from the saved run's classifier."""
    source, abstract = self.options.attentive.pretrained, abstract_stats[FROZEN]
    if not self._from_run:
      params, batch_stats = pretrained.load_torchvision(source, abstract["params"], abstract["batch_stats"])
      return {FROZEN: {"params": params, "batch_stats": batch_stats}}
    _, state = _saved_run(source, state=True)
    variables = {"params": state["params"]["classifier"]["backbone"]}
    if "backbone" in state["batch_stats"]["classifier"]:
      variables["batch_stats"] = state["batch_stats"]["classifier"]["backbone"]
    variables = jax.device_get(variables)
    if jax.tree.map(jnp.shape, variables) != jax.tree.map(jnp.shape, abstract):
      raise ConfigError(
        f"config.attentivemix.pretrained = {source!r}: that run's network does not take this run's images "
        "(its variables differ in shape, e.g. in the input channels). Use a run on the same kind of images."
      )
    return {FROZEN: variables}

  def features(self, nets: Networks, variables: dict, images: jax.Array) -> jax.Array:
    """The frozen network's last feature map [B, h, w, c] of images [B, H, W, C], without gradient."""
    stages, _ = nets.frozen.apply(variables, self.network_input(images), train=True, mutable=["batch_stats"])
    return jax.lax.stop_gradient(stages[-1])

  def mix(self, images, labels, key, features=None) -> mixing.MixResult:
    """The mixed batch of images [B, H, W, C] and labels [B] by the attention of `features` [B, h, w, c]."""
    if features is None:
      raise ValueError("AttentiveMix+ mixes by attention: pass features=method.features(nets, variables, images).")
    plan = mixing.sample_plan(key, labels.shape[0], self.options.mixup.alpha)
    return attentive_ops.mix(images, labels, features, plan, self.options.attentive.top_k)

  def preview(self, nets, state, images, labels, rng):
    features = self.features(nets, state.batch_stats[FROZEN], images)
    return self.mix(images, labels, jax.random.split(rng)[0], features)

  def loss(self, nets, params, state, batch, rng):
    features = self.features(nets, state.batch_stats[FROZEN], batch["images"])
    return super().loss(nets, params, state, {**batch, "features": features}, rng)

  def forward(self, nets, variables, batch, mix_key, rng):
    mixed = self.mix(batch["images"], batch["labels"], mix_key, batch["features"])
    return self.classify(nets, variables, mixed, rng)
