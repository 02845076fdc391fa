"""Config: every bad value is rejected before anything is built, with the valid choices named."""

import os
import subprocess
import sys
import time

import pytest

from adamix_jax.config import ConfigError, base_config, from_file
from adamix_jax.validation import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
  "key,value,message",
  [
    (
      "method",
      "mixupp",
      "Valid choices: adautomix, alignmix, attentivemix, automix, comixup, cutmix, deit, dmixmatch, erm, fixmatch, "
      "fmix, gridmix, manifoldmix, mixup, puzzlemix, resizemix, saliencymix, samix, smmix, smoothmix, transmix",
    ),
    ("mixup.gridmix_n_holes", (0, 6), r"gridmix_n_holes = \(0, 6\) must be a \(low, high\) pair with 1 <= low"),
    ("mixup.gridmix_cut_aspect_ratio", (2.0, 0.5), r"must be a \(low, high\) pair with 0 < low <= high"),
    ("mixup.smoothmix_lam", "pixels", "Valid choices: area, reference"),
    ("loss.dm.mode", "most", "Valid choices: both, less, more"),
    ("loss.dm.eta", 0.1, "needs a mixing method"),
    ("mixup.alpha", 0.0, "config.mixup.alpha = 0.0 must be > 0"),
    ("mixup.manifoldmix_stages", (0, 3), "must be a non-empty subset of \\(0, 1, 2\\)"),
    ("adautomix.beta", 1.5, "config.adautomix.beta = 1.5 must lie in [0, 1]"),
    ("adautomix.mixup_ratio", -0.1, "config.adautomix.mixup_ratio = -0.1 must lie in"),
    ("adautomix.lam_margin", 2.0, "config.adautomix.lam_margin = 2.0 must lie in"),
    ("adautomix.num_mix", 1, "config.adautomix.num_mix = 1 must be >= 2"),
    ("automix.mask_loss", -1.0, "config.automix.mask_loss = -1.0 must be >= 0"),
    ("smmix.side_ratios", (0.5, 0.25), "config.smmix.side_ratios = \\(0.5, 0.25\\) must satisfy 0.0 < low <= high"),
    ("smmix.prob", 1.5, "config.smmix.prob = 1.5 must lie in"),
    ("comixup.thres_type", "medium", "Valid choices: hard, soft"),
    ("comixup.thres", 1.2, "config.comixup.thres = 1.2 must lie in [0, 1]"),
    ("alignmix.eps", 0.0, "config.alignmix.eps = 0.0 must be > 0"),
    ("alignmix.max_iter", 0, "config.alignmix.max_iter = 0 must be an integer >= 1"),
    ("alignmix.alternate", "cutmix", "Valid choices: manifoldmix, mixup, none"),
    ("model.norm_before_pool", True, "applies to convnext_t, convnext_t_cifar, not cifar_resnet18: leave it False"),
    ("generator.upsample_mode", "cubic", "Valid choices: bilinear, nearest"),
    ("data.randaugment.operations", ("Blur",), "has 'Blur', which is not known"),
    ("semisup.strong.cutout.fill", (1, 2), "config.semisup.strong.cutout.fill = \\(1, 2\\) must be three values"),
    ("model.name", "resnet19", "cifar_resnet18"),
    ("data.name", "cifar1000", "cifar100"),
    ("model.init", "xavier", "flax, official"),
    ("optimizer.lr", -0.1, "config.optimizer.lr = -0.1 must be > 0"),
    ("optimizer.min_lr", 0.5, "exceeds config.optimizer.lr"),
    ("optimizer.name", "lamb", "Valid choices: adamw, sgd"),
    ("optimizer.schedule", "step", "Valid choices: cosine_per_epoch, cosine_per_step"),
    ("optimizer.warmup_epochs", 5.0, "needs config.optimizer.schedule = 'cosine_per_step'"),
    ("optimizer.warmup_ratio", 0.0, "must lie in \\(0, 1"),
    ("model.window", 7, "applies to swin_t, not cifar_resnet18"),
    ("model.drop_path", 0.1, "applies to deit_s, swin_t, convnext_t, convnext_t_cifar, not cifar_resnet18"),
    ("loss.label_smoothing", 1.0, "config.loss.label_smoothing = 1.0 must lie in"),
    ("num_epochs", 0, "config.num_epochs = 0 must be > 0"),
    ("ema.momentum", 1.5, "must lie in [0, 1]"),
    ("eval.report", "ema/mix", "Valid choices: auto, online/one \\(ema/\\* needs config.ema.track"),
  ],
)
def test_bad_values_are_rejected_with_choices(key, value, message):
  """Each part checks what it reads: the method's own options are checked on a run of that method."""
  config = base_config()
  methods = {"mixup": "manifoldmix", "adautomix": "adautomix", "automix": "automix", "alignmix": "alignmix"}
  methods |= {"smmix": "smmix", "comixup": "comixup"}
  config.method = methods.get(key.split(".")[0], "erm")
  if key.startswith("generator"):
    config.method = "adautomix"
  parent, _, leaf = key.rpartition(".")
  (config[parent] if parent else config)[leaf] = value
  with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
    validate(config, num_devices=1)


def test_batch_must_divide_over_devices():
  config = base_config()
  config.batch_size = 100
  validate(config, num_devices=4)
  with pytest.raises(ConfigError, match="not divisible by the 8 devices"):
    validate(config, num_devices=8)


def _run_main(*args):
  start = time.perf_counter()
  result = subprocess.run(
    [sys.executable, "-m", "adamix_jax.main", *args], capture_output=True, text=True, cwd=REPO, timeout=120
  )
  return result, time.perf_counter() - start


def test_cli_rejects_unknown_key(tmp_path):
  result, _ = _run_main("--config", "configs/cifar100.py", "--workdir", str(tmp_path), "--config.num_epoch=3")
  assert result.returncode != 0
  assert "num_epoch" in result.stderr and "num_epochs" in result.stderr  # "Did you mean"


def test_cli_rejects_bad_model_before_touching_data(tmp_path):
  result, _ = _run_main(
    "--config", "configs/cifar100.py", "--workdir", str(tmp_path), "--config.model.name=resnet19",
    f"--config.data.data_dir={tmp_path}",
  )  # fmt: skip
  assert result.returncode == 1
  assert "config.model.name = 'resnet19' is not known. Valid choices:" in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_config_variants():
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    import cifar100

    default = cifar100.get_config()
    assert (default.method, default.num_epochs, default.optimizer.min_lr, default.mixup.alpha) == (
      "adautomix",
      800,
      0.05,
      1.0,
    )
    assert default.adautomix.num_mix == 3 and default.adautomix.beta == 0.3 and default.eval.median_of_last == 10
    validate(default, num_devices=1)
    assert cifar100.get_config("erm,e200").optimizer.min_lr == 0.0
    assert cifar100.get_config("rx50").model.name == "cifar_resnext50_32x4d"
    smoke = cifar100.get_config("smoke")
    assert smoke.num_epochs == 1 and smoke.data.max_train_examples == 1000
    cutmix = cifar100.get_config("cutmix,e400")
    assert (cutmix.method, cutmix.mixup.alpha, cutmix.num_epochs) == ("cutmix", 0.2, 400)
    with pytest.raises(ValueError, match="Valid choices: adautomix, automix, samix, erm, mixup, cutmix"):
      cifar100.get_config("fast")
    import cifar100_dm

    for variant in ("r18_mixup", "rx50_manifoldmix", "rx50_resizemix"):
      validate(cifar100_dm.get_config(variant), num_devices=1)
    dm = cifar100_dm.get_config("r18_cutmix")
    assert (dm.mixup.alpha, dm.loss.dm.eta, dm.loss.dm.mode, dm.loss.dm.lam_power) == (0.2, 0.1, "less", 0.5)
    assert cifar100_dm.get_config("rx50_resizemix").optimizer.weight_decay == 5e-4
    with pytest.raises(ValueError, match="r18_mixup"):
      cifar100_dm.get_config("r34_mixup")
    import quickstart

    assert quickstart.get_config().method == "erm" and quickstart.get_config().num_epochs == 8
    ada = quickstart.get_config("adautomix")
    assert (ada.ema.momentum, ada.ema.end_momentum, ada.optimizer.min_lr) == (0.99, 0.999, 0.05)
    assert quickstart.get_config("erm").ema.momentum == 0.999  # Only the learned methods change the teacher.
    mixup_dm = quickstart.get_config("mixup,dm,e16")
    assert (mixup_dm.method, mixup_dm.mixup.alpha, mixup_dm.num_epochs) == ("mixup", 0.2, 16)
    assert (mixup_dm.loss.dm.eta, mixup_dm.loss.dm.mode, mixup_dm.loss.dm.lam_power) == (0.01, "more", 0.5)
    assert quickstart.get_config("automix").generator.upsample_mode == "nearest"
    for variant in ("adautomix", "automix", "cutmix,dm", "mixup,e16", "adautomix,swin,e10", "adautomix,convnext"):
      validate(quickstart.get_config(variant), num_devices=1)
    swin = quickstart.get_config("adautomix,swin")
    assert (swin.model.name, swin.model.window, swin.data.image_size) == ("swin_t", 4, 32)
    for bad in ("fast", "e0"):
      with pytest.raises(
        ValueError,
        match="Valid choices: erm, mixup, cutmix, gridmix, smoothmix, puzzlemix, alignmix, comixup, attentivemix, "
        "smmix, automix, samix, adautomix, dm, swin, convnext, deit",
      ):
        quickstart.get_config(bad)
    with pytest.raises(ValueError, match="No official DM setting for method 'adautomix'. Methods that have one: mixup"):
      quickstart.get_config("adautomix,dm")
    import cifar100_semisup
    import quickstart_semisup

    for method in ("fixmatch", "dmixmatch"):
      for labels in (400, 2500, 10000):
        ssl = cifar100_semisup.get_config(f"{method}_{labels}")
        validate(ssl, num_devices=1)
        assert (ssl.semisup.num_labeled, ssl.batch_size, ssl.semisup.unlabeled_ratio) == (labels, 64, 7)
        assert ssl.semisup.weak_crop_padding == (4 if labels == 10000 else 2)
        assert (ssl.optimizer.lr, ssl.optimizer.min_lr, ssl.optimizer.weight_decay) == (0.03, 0.03 * 0.2, 1e-3)
        assert not ssl.optimizer.decay_norm_and_bias and (ssl.ema.momentum, ssl.ema.end_momentum) == (0.999, 0.99999)
        assert ssl.loss.dm.eta == (1.0 if method == "dmixmatch" else 0.0) and ssl.model.name == "wrn28_8"
      validate(quickstart_semisup.get_config(method), num_devices=1)
    validate(quickstart_semisup.get_config("supervised"), num_devices=1)
    with pytest.raises(ValueError, match="fixmatch_400"):
      cifar100_semisup.get_config("fixmatch_4000")
  finally:
    sys.path.remove(os.path.join(REPO, "configs"))


def test_cli_fails_fast_when_cifar100_is_not_prepared_offline(tmp_path):
  result, seconds = _run_main(
    "--config", "configs/cifar100.py", "--workdir", str(tmp_path / "run"), f"--config.data.data_dir={tmp_path}",
    "--config.data.download=False",
  )  # fmt: skip
  assert result.returncode == 1
  assert (
    f"is not prepared in {tmp_path}/cifar100/3.0.2" in result.stderr
    and "python -m adamix_jax.data.prepare cifar100" in result.stderr
  )
  assert seconds < 20  # Imports included; the check itself takes well under a second (test_data).


def test_from_file_reads_a_config_file_as_the_command_line_does(tmp_path):
  quickstart = os.path.join(REPO, "configs", "quickstart.py")
  default, variant = from_file(quickstart), from_file(quickstart + ":cutmix,dm,e16")
  assert default.method == "erm" and default.num_epochs == 8
  assert (variant.method, variant.loss.dm.eta, variant.num_epochs) == ("cutmix", 0.1, 16)
  with pytest.raises(ConfigError, match="No config file .*nowhere.py"):
    from_file(str(tmp_path / "nowhere.py:erm"))
  (tmp_path / "empty.py").write_text("x = 1\n")
  with pytest.raises(ConfigError, match="has no get_config"):
    from_file(str(tmp_path / "empty.py"))
