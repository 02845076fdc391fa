"""Pictures of what a run's method mixes: during training (TensorBoard) and from a saved checkpoint (PNG).

    python -m adamix_jax.tools.visualize --workdir runs/qs_adautomix [--out DIR] [--count 8] [--step N] [--method M]

renders, for the first `count` test images, the method's mixed samples and the per-pixel weight of every
source (the generator's masks for AdAutoMix / AutoMix) with the checkpoint's networks, to a labelled
DIR/mixing_step<N>.png (default DIR: WORKDIR/pictures; each sample's source classes and weights, the
method, the step and the masks' spatial standard deviation), plus mixing_step<N>.json with the same facts.
The pictures use a fixed key, so pictures of different steps show the same mixing plan. `--method cutmix`
(any static mixup) shows what that mixup would make of the run's images, e.g. on an ERM run.
"""

import argparse
import copy
import json
import os

from absl import logging
from etils import epath

from adamix_jax import data, methods, mixing, pictures
from adamix_jax.experiment import load_run
from adamix_jax.sharding import host_value


def _image_mixups() -> list[str]:
  """The static mixups that mix images (not ManifoldMix, AlignMix) with nothing but the run (not AttentiveMix+,
  which reads a network of its own): any run's images can show them."""
  return [
    name
    for name, cls in methods.METHODS.items()
    if issubclass(cls, methods.StaticMixup) and cls.mixes_images and not cls.reads_network_file
  ]


def _stand_in(config, name: str):
  """A static mixup `name` on `config`'s run, to show what it would make of that run's images."""
  if name not in methods.METHODS:
    raise ValueError(f"--method {name!r} is not known. Valid choices: {', '.join(sorted(methods.METHODS))}.")
  if name not in _image_mixups() and issubclass(methods.METHODS[name], methods.StaticMixup):
    raise ValueError(
      f"--method {name!r} cannot mix this run's images: it mixes hidden features or reads a network of its own. "
      f"Train a run with --config.method={name}, or choose: {', '.join(_image_mixups())}."
    )
  backbones = methods.METHODS[name].backbones
  if backbones is not None and config.model.name not in backbones:
    raise ValueError(
      f"--method {name!r} runs on {', '.join(backbones)}; this run's backbone is {config.model.name!r}. Choose: "
      f"{', '.join(_image_mixups())}."
    )
  if not issubclass(methods.METHODS[name], methods.StaticMixup):
    raise ValueError(
      f"--method {name!r} needs a run trained with it (its networks make the mixing); this run is "
      f"{config.method!r}. Train one with --config.method={name}, or choose a static mixup: "
      f"{', '.join(_image_mixups())}."
    )
  config = copy.deepcopy(config)
  config.method = name
  return methods.METHODS[name].from_config(config)


def render_checkpoint(
  workdir: str, out: str = "", count: int = 8, step: int | None = None, method: str = "", seed: int | None = None
) -> list[str]:
  """Renders the mixing of the checkpoint at `step` (default: the latest) of `workdir` as a labelled PNG.

  Args:
    method: the mixing to show (default: the run's own method). Another method must be a static mixup
      (it needs no trained networks): what it would make of this run's test images.
    seed: the key of the drawn mixing (partners, lambda, boxes); default: the run's seed.

  Returns:
    The paths written (a PNG and a JSON), or [] when the method mixes no images (ERM, ManifoldMix, AlignMix).

  Raises:
    FileNotFoundError: the workdir has no checkpoint.
    ValueError: `method` is unknown, or a learned method the run was not trained with.
  """
  run = load_run(workdir, step)
  config, info, nets, state = run.config, run.info, run.experiment.nets, run.state
  name = method or config.method
  shown = run.experiment.method if name == config.method else _stand_in(config, name)
  saved = int(host_value(state.step))
  images, labels = data.InputPipeline(config, info).first_eval_examples(count)
  rendered = pictures.render(
    pictures.make_previewer(shown, nets, info, config.seed if seed is None else seed), state, images, labels, info
  )
  if rendered is None:
    print(
      f"config.method = {name!r} mixes no images: nothing to render. To see what a mixup would make of "
      f"this run's images: --method {' | '.join(_image_mixups())}; AdAutoMix's and AutoMix's masks need "
      "a run of their own (e.g. --config configs/quickstart.py:adautomix)."
    )
    return []
  _, result = rendered
  structure = float(mixing.mask_spatial_std(result.masks))
  out = out or os.path.join(workdir, "pictures")
  epath.Path(out).mkdir(parents=True, exist_ok=True)
  suffix = "" if name == config.method else f"_{name}"
  png, record = (os.path.join(out, f"mixing_step{saved}{suffix}.{ext}") for ext in ("png", "json"))
  run = workdir if name == config.method else f"the images of {workdir} (trained with {config.method})"
  title = f"{name}, step {saved} of {run}: mask spatial std {structure:.3f}"
  with epath.Path(png).open("wb") as f:
    pictures.save_mixing_figure(result, info.mean, info.std, f, title, info.class_names, count)
  described = {
    "method": name,
    "run_method": config.method,
    "step": saved,
    "labels": result.labels.tolist(),
    "classes": [[pictures.class_label(int(i), info.class_names) for i in row] for row in result.labels],
    "lams": result.lams.tolist(),
    "mask_spatial_std": structure,
  }
  with epath.Path(record).open("w") as f:
    json.dump(described, f, indent=1)
  return [png, record]


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m adamix_jax.tools.visualize", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the run's workdir (with checkpoints/)")
  parser.add_argument("--out", default="", help="output directory (default: WORKDIR/pictures)")
  parser.add_argument("--count", type=int, default=8, help="test images to mix")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument(
    "--method", default="", help="the mixing to show (default: the run's; another must be a static mixup)"
  )
  parser.add_argument("--seed", type=int, default=None, help="the drawn mixing's seed (default: the run's)")
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.ERROR)  # Orbax warns that a read-only manager will not save: it will not.
  try:
    for path in render_checkpoint(args.workdir, args.out, args.count, args.step, args.method, args.seed):
      print(f"wrote {path}")
  except (FileNotFoundError, ValueError) as error:
    parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
  main()
