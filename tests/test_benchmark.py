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
    benchmark.main(["--methods", "erm,comix"])
  assert "unknown methods comix. Valid choices: erm, mixup" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    benchmark.main(["--batch_size", "0"])
  assert "--batch_size must be positive, not 0." in capsys.readouterr().err


def test_flop_count_is_taken_before_compilation_and_counts_the_convolutions():
  """The lowered program's count: platform-independent (a GPU compilation hides convolutions in cuDNN calls),
  equal to the compiled count on the CPU, and the analytic count of a convolution's forward and backward."""
  import jax
  import jax.numpy as jnp

  def loss(kernel, images):
    dims = ("NHWC", "HWIO", "NHWC")
    return jnp.sum(jax.lax.conv_general_dilated(images, kernel, (1, 1), "SAME", dimension_numbers=dims) ** 2)

  kernel, images = jnp.ones((3, 3, 16, 32)), jnp.ones((8, 32, 32, 16))
  lowered = jax.jit(jax.value_and_grad(loss)).lower(kernel, images)
  forward = 2 * 8 * 32 * 32 * 32 * 16 * 9 / 1e9  # Multiply-adds of the output.
  gflops = benchmark._gflops(lowered)
  assert 2 * forward * 0.9 < gflops < 2 * forward * 1.1  # Forward and the kernel's gradient.
  assert gflops == pytest.approx(benchmark._gflops(lowered.compile()), rel=0.01)
