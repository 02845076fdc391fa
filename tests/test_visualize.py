"""Pictures of the mixing: TensorBoard images during training and PNGs of a saved checkpoint."""

import io
import json
import os

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

from adamix_jax import data, mixing, pictures, sharding, train
from adamix_jax.experiment import load_run, make_experiment
from adamix_jax.tools import visualize


def _png(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)))


def _tensorboard_images(workdir):
  """{step: picture} as TensorBoard's own loader reads the run's events (its images in tensor form)."""
  images = {}
  directory = os.path.join(workdir, "tensorboard")
  for name in os.listdir(directory):
    for event in EventFileLoader(os.path.join(directory, name)).Load():
      for value in event.summary.value:
        if value.tag == "mixing/samples_and_masks":
          png = tensor_util.make_ndarray(value.tensor)[2]  # [width, height, encoded PNG]
          images[event.step] = _png(png)
  return images


@pytest.mark.slow
def test_adautomix_pictures_in_tensorboard_and_from_the_checkpoint(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, method="adautomix", num_epochs=1, **{"log.images_every_steps": 4})
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  drawn = _tensorboard_images(workdir)
  assert sorted(drawn) == [4, 8]  # 10 steps, every 4.
  assert drawn[8].shape == ((1 + 3) * 28, 8 * 28, 3) and drawn[8].dtype == np.uint8  # Mixed + N = 3 masks.
  assert not np.array_equal(drawn[4], drawn[8])  # The same plan, a generator that moved.

  paths = visualize.render_checkpoint(workdir, count=6)
  assert [os.path.basename(p) for p in paths] == ["mixing_step10.png", "mixing_step10.json"]
  figure = _png(open(paths[0], "rb").read())
  assert figure.shape[0] > 4 * 100 and figure.shape[1] > 6 * 100  # Mixed + 3 masks, readable tiles.
  with open(paths[1]) as f:
    described = json.load(f)
  assert described["step"] == 10 and described["method"] == "adautomix"
  assert np.allclose(np.sum(described["lams"], axis=0), 1.0)
  names = data.data_info(config).class_names
  assert described["classes"] == [[names[i] for i in row] for row in described["labels"]]

  # The same from Python: the masks themselves, before rounding to pixels.
  info = data.data_info(config)
  experiment = make_experiment(config, info, sharding.make_mesh(1))
  method, nets, state = experiment.method, experiment.nets, experiment.init()
  images, labels = data.InputPipeline(config, info).first_eval_examples(5)
  _, result = pictures.render(pictures.make_previewer(method, nets, info, 0), state, images, labels, info)
  assert result.masks.shape == (5, 28, 28, 3) and result.masks.min() >= 0
  np.testing.assert_allclose(result.masks.sum(axis=-1), 1.0, rtol=1e-5)
  # The picture's structure number is the masks' (same fixed key, so the same plan), of the saved state.
  run = load_run(workdir)
  config_saved, nets_saved, saved = run.config, run.experiment.nets, run.state
  images, labels = data.InputPipeline(config_saved, info).first_eval_examples(6)
  previewer = pictures.make_previewer(method, nets_saved, info, config.seed)
  _, at_step_10 = pictures.render(previewer, saved, images, labels, info)
  assert described["mask_spatial_std"] == pytest.approx(float(mixing.mask_spatial_std(at_step_10.masks)), rel=1e-5)


def test_a_run_that_does_not_mix_says_so_and_shows_a_chosen_static_mixup(tfds_dir, tmp_path, capsys):
  config = tiny_config(tfds_dir, num_epochs=1, **{"log.images_every_steps": 4})
  train.train_and_evaluate(config, str(tmp_path))
  assert visualize.render_checkpoint(str(tmp_path)) == []
  printed = capsys.readouterr().out
  assert "mixes no images" in printed and "--method mixup | cutmix" in printed
  paths = visualize.render_checkpoint(str(tmp_path), count=4, method="cutmix")
  with open(paths[1]) as f:
    described = json.load(f)
  assert os.path.basename(paths[0]) == "mixing_step10_cutmix.png" and described["run_method"] == "erm"
  assert described["method"] == "cutmix" and described["mask_spatial_std"] > 0.05  # Boxes have structure.
  again = visualize.render_checkpoint(str(tmp_path), count=4, method="cutmix", seed=config.seed)
  other = visualize.render_checkpoint(str(tmp_path), out=str(tmp_path / "other"), count=4, method="cutmix", seed=7)
  lams = [json.load(open(paths[1]))["lams"] for paths in (again, other)]
  assert lams[0] == described["lams"] and lams[1] != described["lams"]  # The seed draws the mixing.
  with pytest.raises(ValueError, match="needs a run trained with it"):
    visualize.render_checkpoint(str(tmp_path), method="adautomix")
  with pytest.raises(ValueError, match="reads a network of its own"):
    visualize.render_checkpoint(str(tmp_path), method="attentivemix")
  with pytest.raises(ValueError, match="runs on deit_s; this run's backbone is 'cifar_resnet18'"):
    visualize.render_checkpoint(str(tmp_path), method="smmix")
  with pytest.raises(ValueError, match="Valid choices: adautomix"):
    visualize.render_checkpoint(str(tmp_path), method="mixupp")


def test_visualize_without_checkpoint_fails_clearly(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    visualize.main(["--workdir", str(tmp_path)])
  assert exit_info.value.code == 1 and "holds no checkpoint" in capsys.readouterr().err
