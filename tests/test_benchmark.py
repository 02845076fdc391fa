"""The benchmark runs end to end (tiny preset) and writes its JSON and markdown table; it times nothing here."""

import json

import pytest

from adamix_jax.tools import benchmark


@pytest.mark.slow
def test_benchmark_tiny_preset_writes_results(tfds_dir, tmp_path):
  """ERM, a static mixup with DM and the DeiT recipe, with FLOP counts and both ratios."""
  methods = ("erm", "mixup+dm", "deit")
  results = benchmark.run("tiny", str(tmp_path), methods=methods, data_dir=tfds_dir)
  with open(tmp_path / "benchmark.json") as f:
    assert json.load(f) == results
  (run,) = results["runs"]
  rows = run["methods"]
  assert tuple(rows) == methods and results["model"] == "cifar_resnet18"
  assert rows["erm"]["ratio_to_erm"] == 1.0 and rows["deit"]["ratio_to_deit"] == 1.0
  for row in rows.values():
    assert row["median_ms"] > 0 and row["compile_s"] > 0 and row["xla_step_mib"] > 0 and row["gflops"] > 0
  # Mixing adds elementwise work to the same forward and backward pass: within a few percent of ERM's count.
  assert rows["erm"]["gflops"] <= rows["deit"]["gflops"] < 1.1 * rows["erm"]["gflops"]
  assert run["pipeline_images_per_s"] > 0 and 0 <= run["loop"]["erm"]["data_wait_fraction"] < 1
  table = (tmp_path / "benchmark.md").read_text()
  assert "| mixup+dm |" in table and "| × DeiT | GFLOP |" in table and "waiting for data" in table


@pytest.mark.parametrize("model", sorted(benchmark.MODELS))
def test_each_benchmarked_model_is_a_valid_run_at_its_input_size(tfds_dir, model):
  from adamix_jax.validation import validate

  narrow = benchmark.MODELS[model].narrow_width or 16
  for preset, width in (("cpu", narrow), ("cpu_full", 0), ("accelerator", 0)):
    config = benchmark.benchmark_config(
      benchmark.PRESETS[preset], 100, "float32", tfds_dir, benchmark.METHODS["adautomix_n3"], model
    )
    validate(config, num_devices=1)
    assert (config.data.image_size, config.model.width) == (benchmark.MODELS[model].image_size, width)
  assert config.model.name == ("convnext_t_cifar" if model == "convnext_t" else model)


def test_benchmark_rejects_unknown_methods(capsys):
  with pytest.raises(SystemExit):
    benchmark.main(["--methods", "erm,puzzlemix"])
  assert "unknown methods puzzlemix. Valid choices: erm, mixup" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    benchmark.main(["--batch_size", "0"])
  assert "--batch_size must be positive, not 0." in capsys.readouterr().err
