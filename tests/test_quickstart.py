"""The README's quickstart number, measured: its command, run as a reader runs it, gives the README's row for the
installed jax within 0.5 points (the runs are deterministic on a machine; the margin covers other CPUs)."""

import json
import os
import re
import subprocess
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = "python -m adamix_jax.main --config configs/quickstart.py --workdir runs/quickstart"
ROW = re.compile(r"^\| jax (\d+\.\d+)[.\d]*, Python [\d.]+ \| ([\d.]+) \|$", re.MULTILINE)


def readme_numbers() -> dict[str, float]:
  """jax "major.minor" -> the quickstart's test top-1 the README gives for it."""
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  assert COMMAND in readme, "the README's quickstart command changed: change it here too"
  return {version: float(top1) for version, top1 in ROW.findall(readme)}


def test_the_readme_gives_the_quickstart_number_of_each_tested_jax():
  assert {"0.10", "0.12"} <= set(readme_numbers())


@pytest.mark.slow
def test_the_quickstart_gives_the_readme_number(tmp_path):
  version = ".".join(jax.__version__.split(".")[:2])
  numbers = readme_numbers()
  if version not in numbers:
    pytest.skip(f"the README gives no quickstart number for jax {version}")
  os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
  environment = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  argv = [sys.executable, *COMMAND.split()[1:]]
  result = subprocess.run(argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "runs" / "quickstart" / "summary.json") as f:
    top1 = json.load(f)["reported_top1"]
  assert abs(top1 - numbers[version]) <= 0.5, f"jax {jax.__version__}: {top1:.2f}, the README says {numbers[version]}"
