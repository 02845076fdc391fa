"""Fine-grained recognition from ImageNet-pretrained ResNets: CUB-200, FGVC-Aircraft and Stanford Cars.

    python -m adamix_jax.main --config configs/fine_grained.py:cub_r18 --workdir runs/cub_r18_adautomix \
        --config.model.pretrained=weights/resnet18.npz
    python -m adamix_jax.main --config configs/fine_grained.py:cars_rx50 --workdir runs/cars_rx50_adautomix \
        --config.model.pretrained=weights/resnext50_32x4d.npz

Pretrained weights: torchvision's ImageNet checkpoints, converted once to .npz where PyTorch is installed
(adamix_jax/models/pretrained.py shows the one-liner); nothing is downloaded at run time. Without a file
the run stops before compiling and says so; `--config.model.pretrained=''` trains from scratch instead.
The default path is pretrained/<torchvision name>.npz relative to the working directory.

Data: CUB-200-2011 from tfds ('caltech_birds2011', official 5,994 / 5,794 split); FGVC-Aircraft (100
variants, trainval / test) and Stanford Cars (196 classes) as image folders (the run prints the layout when
they are missing). Training: RandomResizedCrop 224 and a horizontal flip; evaluation: shorter side 256,
centre crop 224; ImageNet mean/std.

AdAutoMix (docs/method.md#adautomix): 200 epochs, batch 16, SGD momentum 0.9, weight decay 5e-4, lr 0.001
cosine, generator lr 0.1 -> 0.001 cosine; N = 3, alpha 1, lambda channel, bilinear x16 masks from stage 3
(14x14), EMA 0.999 -> 0.99999. Per variant (beta, lam_margin, N drawn from {2, 3} or fixed, lr floor) and
the expected top-1 of the EMA one-hot head (docs/method.md#expected-numbers):
  cub_r18        0.3, 0.03, random, 0        80.88%
  cub_r50        0.1, 0.03, fixed,  0        84.57%
  cub_rx50       0.1, 0.03, fixed,  0        (no published AdAutoMix number; generator floor 5e-4)
  aircraft_r18   0.3, 0.0,  random, 5e-4     81.73%
  aircraft_rx50  0.6, 0.03, random, 0        87.16%
  cars_r18       0.5, 0.03, fixed,  0        89.19%
  cars_rx50      0.3, 0.03, fixed,  0        91.59%  (the official run used fp16; here float32)
Add `,smoke` to check a setup: 1 epoch on 320 training and 200 test images at width 16, from scratch.
"""

from adamix_jax.config import base_config, random_resized_crop_recipe

DATASETS = {"cub": "cub200", "aircraft": "fgvc_aircraft", "cars": "stanford_cars"}
BACKBONES = {"r18": ("resnet18", "resnet18"), "r50": ("resnet50", "resnet50"),
             "rx50": ("resnext50_32x4d", "resnext50_32x4d")}  # fmt: skip
# variant: (beta, lam_margin, random N, lr floor, generator lr floor)
SETTINGS = {
  "cub_r18": (0.3, 0.03, True, 0.0, 1e-3),
  "cub_r50": (0.1, 0.03, False, 0.0, 1e-3),
  "cub_rx50": (0.1, 0.03, False, 0.0, 5e-4),
  "aircraft_r18": (0.3, 0.0, True, 5e-4, 1e-3),
  "aircraft_rx50": (0.6, 0.03, True, 0.0, 1e-3),
  "cars_r18": (0.5, 0.03, False, 0.0, 1e-3),
  "cars_rx50": (0.3, 0.03, False, 0.0, 1e-3),
}


def get_config(variants: str = "cub_r18"):
  config = base_config()
  config.method = "adautomix"
  random_resized_crop_recipe(config, image_size=224, eval_resize=256)
  config.num_epochs = 200
  config.batch_size = 16
  config.eval_batch_size = 200
  config.optimizer.lr, config.optimizer.weight_decay = 0.001, 5e-4
  config.optimizer.generator.lr = 0.1
  config.adautomix.num_mix = 3
  config.generator.lam_concat = True
  config.ema.end_momentum = 0.99999
  chosen, smoke = "cub_r18", False
  for variant in filter(None, variants.split(",")):
    if variant in SETTINGS:
      chosen = variant
    elif variant == "smoke":
      smoke = True
    else:
      valid = ", ".join([*SETTINGS, "smoke"])
      raise ValueError(f"Unknown variant {variant!r} of configs/fine_grained.py. Valid choices: {valid}.")
  dataset, backbone = chosen.split("_")
  config.data.name = DATASETS[dataset]
  config.model.name, weights = BACKBONES[backbone]
  config.model.pretrained = f"pretrained/{weights}.npz"
  (config.adautomix.beta, config.adautomix.lam_margin, config.adautomix.random_num, config.optimizer.min_lr,
   config.optimizer.generator.min_lr) = SETTINGS[chosen]  # fmt: skip
  if smoke:
    config.num_epochs, config.model.width, config.model.pretrained = 1, 16, ""
    config.data.max_train_examples, config.data.max_eval_examples = 320, 200
  return config
