"""Options objects: read from their section, typed, frozen, checked on construction, named in every message."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamix_jax import losses, methods, models
from adamix_jax.config import ConfigError, base_config
from adamix_jax.data.options import SemisupOptions
from adamix_jax.data.rand_augment import Policy
from adamix_jax.train_state import OptimizerOptions, make_optimizer, make_train_state


def test_options_read_their_section_and_default_to_base_config():
  config = base_config()
  config.adautomix.beta, config.generator.feature_stage = 0.4, 1
  options = methods.AdAutoMix.Options.from_config(config)
  assert (options.beta, options.generator.feature_stage, options.num_mix, options.alpha) == (0.4, 1, 3, 1.0)
  assert methods.AdAutoMix.Options.defaults(num_mix=2).num_mix == 2
  assert methods.AdAutoMix.Options.defaults().beta == base_config().adautomix.beta
  with pytest.raises(dataclasses.FrozenInstanceError):
    options.beta = 0.5


def test_every_message_names_the_full_key_even_in_a_sub_section():
  config = base_config()
  config.semisup.strong.randaugment.level = 40.0
  with pytest.raises(ConfigError, match=r"^config\.semisup\.strong\.randaugment\.level = 40.0 exceeds max_level"):
    SemisupOptions.from_config(config)
  with pytest.raises(ConfigError, match=r"^config\.data\.randaugment\.prob = 2\.0 must lie in \[0, 1\]\.$"):
    Policy(prob=2.0)
  with pytest.raises(ConfigError, match=r"^config\.loss\.dm\.eta = -1\.0 must be >= 0\.$"):
    losses.DecoupledMixupOptions.defaults(eta=-1.0)


def test_a_value_of_the_wrong_type_says_which_type():
  config = base_config().to_dict()  # A plain dict takes any value, as a JSON record would.
  config["adautomix"]["num_mix"] = "three"
  with pytest.raises(ConfigError, match=r"^config\.adautomix\.num_mix must be an integer, not 'three'\.$"):
    methods.AdAutoMix.Options.from_config(config)
  config["adautomix"]["num_mix"] = True
  with pytest.raises(ConfigError, match="must be an integer, not True"):
    methods.AdAutoMix.Options.from_config(config)
  config["adautomix"]["num_mix"], config["mixup"]["alpha"] = 3, 2  # An int where a float is expected is fine.
  assert methods.AdAutoMix.Options.from_config(config).alpha == 2.0


def test_relations_between_fields_are_checked():
  with pytest.raises(ConfigError, match="config.optimizer.min_lr = 0.5 exceeds config.optimizer.lr = 0.1"):
    OptimizerOptions.defaults(min_lr=0.5)
  with pytest.raises(ConfigError, match="config.optimizer.generator.min_lr = 0.5 exceeds"):
    OptimizerOptions.defaults(generator_lr=0.1, generator_min_lr=0.5)
  with pytest.raises(ConfigError, match="config.model.window = 4 applies to swin_t, not cifar_resnet18"):
    models.ModelOptions.defaults(window=4)


def test_a_method_is_built_and_its_loss_computed_from_its_options_alone():
  """AdAutoMix with N = 2: no config file, no dataset; its step's loss and gradients from options only."""
  method = methods.AdAutoMix(methods.AdAutoMix.Options.defaults(num_mix=2))
  classifier = models.ModelOptions.defaults(width=4).classifier(10, method.head_names, "data")
  nets = method.make_networks(classifier, (16, 16, 3))
  params, batch_stats = method.init_variables(nets, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  tx = make_optimizer(OptimizerOptions.defaults(num_epochs=1), params, steps_per_epoch=1)
  state = make_train_state(params, batch_stats, tx, jax.random.key(1))
  batch = {"images": jax.random.normal(jax.random.key(2), (8, 16, 16, 3)), "labels": jnp.arange(8) % 10}
  loss_and_grad = jax.jit(jax.value_and_grad(method.loss, argnums=1, has_aux=True), static_argnums=0)
  (loss, (stats, metrics)), grads = loss_and_grad(nets, state.params, state, batch, jax.random.key(3))
  assert np.isfinite(float(loss)) and set(stats) == {"classifier", "teacher"}
  assert float(metrics["loss_one"]) > 0 and float(jnp.abs(grads["generator"]["conv_v"]["kernel"]).sum()) > 0
