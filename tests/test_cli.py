"""One command-line style: `--help` exits 0 with the usage, for the training command and every tool."""

import importlib
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("tool", ["evaluate", "visualize", "compare", "benchmark"])
def test_each_tool_helps_and_exits_0(tool, capsys):
  module = importlib.import_module(f"adamix_jax.tools.{tool}")
  with pytest.raises(SystemExit) as exited:
    module.main(["--help"])
  assert exited.value.code == 0
  assert f"python -m adamix_jax.tools.{tool}" in capsys.readouterr().out


def test_the_training_command_helps_and_exits_0():
  result = subprocess.run(
    [sys.executable, "-m", "adamix_jax.main", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
  )
  assert result.returncode == 0, result.stderr
  assert "--config" in result.stdout and "--workdir" in result.stdout
