"""Preemption: SIGTERM saves and exits, SIGKILL loses at most the steps since the last checkpoint, and the
resumed run ends in exactly the state of an uninterrupted one. Runs the real command in subprocesses."""

import json
import os
import signal
import subprocess
import sys
import time

import chex
import orbax.checkpoint as ocp
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def _command(workdir, tfds_dir):
  overrides = {
    "data.data_dir": tfds_dir, "model.width": 4, "batch_size": 20, "eval_batch_size": 50, "num_epochs": 10,
    "data.max_train_examples": 200, "data.max_eval_examples": 100, "checkpoint.every_steps": 3, "log.progress": False,
  }  # fmt: skip
  flags = [f"--config.{key}={value}" for key, value in overrides.items()]
  return [sys.executable, "-m", "adamix_jax.main", "--config", "configs/quickstart.py", "--workdir", workdir, *flags]


def _start(workdir, tfds_dir):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen(
    _command(workdir, tfds_dir), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
  )


def _steps(workdir):
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def _wait_for_checkpoint_after(process, workdir, step, timeout=120):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if any(s > step for s in _steps(workdir)):
      return
    assert process.poll() is None, process.stdout.read()
    time.sleep(0.02)
  raise TimeoutError(f"no checkpoint after step {step} in {workdir}")


def _final_state(workdir):
  return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(max(_steps(workdir))), "state"))


def test_sigterm_and_sigkill_then_resume_equals_uninterrupted_run(tfds_dir, tmp_path):
  reference = str(tmp_path / "reference")
  finished = _start(reference, tfds_dir)
  assert finished.wait(timeout=300) == 0, finished.stdout.read()

  workdir = str(tmp_path / "interrupted")
  process = _start(workdir, tfds_dir)
  _wait_for_checkpoint_after(process, workdir, 0)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=120) == 128 + signal.SIGTERM
  output = process.stdout.read()
  assert "Stopped by SIGTERM at step" in output and "Rerun the same command to resume" in output
  stopped_at = max(_steps(workdir))
  assert stopped_at < 100

  process = _start(workdir, tfds_dir)
  _wait_for_checkpoint_after(process, workdir, stopped_at)
  process.kill()  # SIGKILL: no chance to save.
  process.wait(timeout=60)
  assert not os.path.exists(os.path.join(workdir, "summary.json")), "the run finished before it could be killed"

  process = _start(workdir, tfds_dir)
  assert process.wait(timeout=300) == 0
  assert "Resuming from step" in process.stdout.read()
  assert max(_steps(workdir)) == max(_steps(reference)) == 100
  chex.assert_trees_all_close(_final_state(workdir), _final_state(reference), rtol=1e-6, atol=1e-7)
  # Each (step, kind) once in metrics.jsonl after a SIGTERM and a SIGKILL, and the same records as the reference.
  records = {}
  for name in (workdir, reference):
    with open(os.path.join(name, "metrics.jsonl")) as f:
      records[name] = [(r["step"], r["kind"]) for r in map(json.loads, f)]
  assert len(records[workdir]) == len(set(records[workdir])) and sorted(records[workdir]) == sorted(records[reference])


def _start_with_default_sigint(workdir, tfds_dir):
  """The command with SIGINT's default disposition (a shell's background job inherits it ignored)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen(
    _command(workdir, tfds_dir), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
  )  # fmt: skip


@pytest.mark.parametrize(
  "sig, when", [(signal.SIGINT, "importing"), (signal.SIGINT, "compiling"), (signal.SIGTERM, "compiling")]
)
def test_a_signal_during_start_up_stops_at_once_in_one_line(tfds_dir, tmp_path, sig, when):
  """While modules import, or once the workdir is taken while the data is read and the step compiles: no
  traceback, no crash, no lock left."""
  workdir = str(tmp_path / "run")
  process = _start_with_default_sigint(workdir, tfds_dir)
  if when == "importing":
    time.sleep(0.5)
  else:
    while not os.path.exists(os.path.join(workdir, "lock.json")):
      assert process.poll() is None
      time.sleep(0.01)
    time.sleep(0.2)
  process.send_signal(sig)
  stdout, stderr = process.communicate(timeout=60)
  assert process.returncode == 128 + sig, stderr
  (line,) = stderr.strip().splitlines()
  assert stdout == "" and line.startswith(
    f"Stopped by {sig.name} before training started or after its last checkpoint: nothing unsaved was lost. "
    "Rerun the same command to continue."
  )
  if when == "compiling":
    assert line.endswith("No checkpoint was written.")
  assert not os.path.exists(os.path.join(workdir, "lock.json")) and not _steps(workdir)
