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
