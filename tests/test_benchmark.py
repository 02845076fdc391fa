"""The benchmark runs end to end (tiny preset) and writes its JSON and markdown table; it times nothing here."""

import json

import pytest

from adamix_jax import benchmark


@pytest.mark.slow
def test_benchmark_tiny_preset_writes_results(tfds_dir, tmp_path):
  results = benchmark.run("tiny", str(tmp_path), methods=("erm", "mixup+dm"), data_dir=tfds_dir)
  with open(tmp_path / "benchmark.json") as f:
    assert json.load(f) == results
  (run,) = results["runs"]
  assert set(run["methods"]) == {"erm", "mixup+dm"}
  assert run["methods"]["erm"]["ratio_to_erm"] == 1.0
  for row in run["methods"].values():
    assert row["median_ms"] > 0 and row["compile_s"] > 0 and row["xla_step_mib"] > 0
  assert run["pipeline_images_per_s"] > 0 and 0 <= run["loop"]["erm"]["data_wait_fraction"] < 1
  table = (tmp_path / "benchmark.md").read_text()
  assert "| mixup+dm |" in table and "waiting for data" in table


def test_benchmark_rejects_unknown_methods(capsys):
  with pytest.raises(SystemExit):
    benchmark.main(["--methods", "erm,puzzlemix"])
  assert "unknown methods puzzlemix. Valid choices: erm, mixup" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_of_a_transformer_reports_flops_and_the_ratio_to_the_deit_recipe(tfds_dir, tmp_path):
  results = benchmark.run(
    "tiny", str(tmp_path), methods=("deit", "adautomix_n3"), data_dir=tfds_dir, model="convnext_t"
  )
  (run,) = results["runs"]
  deit, adautomix = run["methods"]["deit"], run["methods"]["adautomix_n3"]
  assert deit["ratio_to_deit"] == 1.0 and adautomix["ratio_to_deit"] > 0
  assert adautomix["gflops"] > 2 * deit["gflops"] > 0  # Four passes and a generator against one pass.
  assert "| adautomix_n3 |" in (tmp_path / "benchmark.md").read_text() and results["model"] == "convnext_t"
