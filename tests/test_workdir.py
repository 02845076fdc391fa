"""The workdir survives: one trainer, harmless readers, damaged checkpoints, bad paths, a full disk, reruns."""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import tiny_config
from orbax.checkpoint._src.handlers import json_checkpoint_handler

from adamix_jax import train
from adamix_jax.checkpointing import CheckpointError
from adamix_jax.workdir import LOCK_NAME, WorkdirError, WorkdirLock, WorkdirLost

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(workdir, tfds_dir, *extra, module="adamix_jax.main"):
  if module != "adamix_jax.main":
    return [sys.executable, "-m", module, "--workdir", workdir, *extra]
  overrides = {
    "data.data_dir": tfds_dir, "model.width": 4, "batch_size": 20, "eval_batch_size": 50, "num_epochs": 6,
    "data.max_train_examples": 200, "data.max_eval_examples": 100, "checkpoint.every_steps": 2,
    "log.progress": False, "method": "mixup",
  }  # fmt: skip
  flags = [f"--config.{key}={value}" for key, value in overrides.items()]
  return [sys.executable, "-m", module, "--config", "configs/quickstart.py", "--workdir", workdir, *flags, *extra]


def _popen(command):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _steps(workdir):
  directory = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def _wait_for(predicate, process, timeout=180):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return
    assert process.poll() is None, process.communicate()
    time.sleep(0.05)
  raise TimeoutError


def _error_lines(stderr: str) -> list[str]:
  """stderr without TensorFlow's and XLA's start-up chatter."""
  noise = ("WARNING: All log messages", "I0000", "W0000", "E0000")
  return [line for line in stderr.splitlines() if line.strip() and not line.startswith(noise)]


@pytest.mark.slow
def test_readers_beside_a_trainer_leave_it_alone_and_a_second_trainer_is_refused(tfds_dir, tmp_path):
  workdir = str(tmp_path / "run")
  writer = _popen(_command(workdir, tfds_dir))
  _wait_for(lambda: os.path.exists(os.path.join(workdir, LOCK_NAME)), writer)
  second = _popen(_command(workdir, tfds_dir))
  _, stderr = second.communicate(timeout=120)
  lines = _error_lines(stderr)
  assert second.returncode == 1 and len(lines) == 1, stderr
  assert "is being trained by another process" in lines[0] and f"pid {writer.pid}" in lines[0]
  _wait_for(lambda: _steps(workdir), writer)
  pictures = []
  while writer.poll() is None:  # Readers open the checkpoints over and over while the writer saves.
    out = str(tmp_path / f"pictures{len(pictures)}")
    reader = _popen(_command(workdir, tfds_dir, "--out", out, module="adamix_jax.tools.visualize"))
    reader.communicate(timeout=180)
    if reader.returncode == 0:
      pictures.extend(name for name in os.listdir(out) if name.endswith(".png"))
  stdout, stderr = writer.communicate()
  assert writer.returncode == 0, stderr
  assert pictures, "no reader got its picture while the trainer ran"
  assert not os.path.exists(os.path.join(workdir, LOCK_NAME))  # Released at the end.


def test_a_stale_lock_is_taken_over_and_a_live_one_is_not(tmp_path, capsys):
  gone = subprocess.Popen([sys.executable, "-c", "pass"])
  gone.wait()
  lock_path = tmp_path / LOCK_NAME
  lock_path.write_text(json.dumps({"host": os.uname().nodename, "pid": gone.pid, "started": "yesterday"}))
  with WorkdirLock(str(tmp_path)):
    assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    with pytest.raises(WorkdirError, match=f"pid {os.getpid()} on"):
      WorkdirLock(str(tmp_path)).acquire()
  assert "Taking over the lock of a trainer that no longer runs" in capsys.readouterr().out
  assert not lock_path.exists()


def test_a_trainer_notices_its_lock_replaced_and_retakes_a_removed_one(tmp_path):
  lock = WorkdirLock(str(tmp_path))
  with lock:
    lock.check_held()
    (tmp_path / LOCK_NAME).unlink()  # Removed by hand: taken again, nobody else holds the workdir.
    lock.check_held()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    other = {"host": "elsewhere", "pid": 4321, "started": "now"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(WorkdirLost, match=r"was taken by another trainer: .* now names pid 4321 on elsewhere"):
      lock.check_held()
  assert json.loads((tmp_path / LOCK_NAME).read_text()) == other  # The new holder's lock is left alone.


@pytest.mark.slow
def test_a_running_trainer_whose_lock_is_replaced_stops_writing(tfds_dir, tmp_path):
  workdir = str(tmp_path / "run")
  trainer = _popen(_command(workdir, tfds_dir, "--config.log.every_steps=1"))
  _wait_for(lambda: _steps(workdir), trainer)
  with open(os.path.join(workdir, LOCK_NAME), "w") as f:
    json.dump({"host": "elsewhere", "pid": 4321, "started": "now"}, f)
  replaced_at = _steps(workdir)[-1]
  _, stderr = trainer.communicate(timeout=120)
  lines = _error_lines(stderr)
  assert trainer.returncode == 1 and len(lines) == 1, stderr
  assert "was taken by another trainer" in lines[0] and "This trainer stopped without writing more" in lines[0]
  assert _steps(workdir)[-1] <= replaced_at + 2  # At most the save already under way when it was replaced.
  assert json.loads(open(os.path.join(workdir, LOCK_NAME)).read())["pid"] == 4321


def _damage(step_dir: str, kind: str) -> None:
  state = os.path.join(step_dir, "state")
  if kind == "truncated_data":
    files = [os.path.join(root, name) for root, _, names in os.walk(os.path.join(state, "d")) for name in names]
    biggest = max(files, key=os.path.getsize)
    with open(biggest, "r+b") as f:
      f.truncate(os.path.getsize(biggest) // 2)
  elif kind == "missing_metadata":
    os.remove(os.path.join(state, "_METADATA"))
  elif kind == "empty_meta":
    open(os.path.join(step_dir, "meta", "metadata"), "w").close()
  elif kind == "truncated_manifest":
    with open(os.path.join(state, "manifest.ocdbt"), "r+b") as f:
      f.truncate(8)


@pytest.mark.parametrize("kind", ["truncated_data", "missing_metadata", "empty_meta", "truncated_manifest"])
def test_a_damaged_latest_checkpoint_is_named_skipped_and_kept(tfds_dir, tmp_path, capsys, kind):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2), workdir)
  assert _steps(workdir) == [10, 20]
  _damage(os.path.join(workdir, "checkpoints", "20"), kind)
  capsys.readouterr()
  summary = train.train_and_evaluate(
    tiny_config(tfds_dir, num_epochs=3, **{"resume.accept_changes": "num_epochs"}), workdir
  )
  output = capsys.readouterr().out
  assert "warning: checkpoint step 20" in output and "is damaged" in output and "Resuming from step 10" in output
  assert summary["steps"] == 30 and _steps(workdir) == [10, 20, 30]
  assert [name for name in os.listdir(os.path.join(workdir, "checkpoints")) if name.startswith("20.damaged")]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [(r["step"], r["kind"]) for r in map(json.loads, f)]
  assert len(records) == len(set(records))  # The steps after 10 were logged again, not twice.


def test_no_intact_checkpoint_stops_instead_of_starting_over(tfds_dir, tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2), workdir)
  for step in _steps(workdir):
    _damage(os.path.join(workdir, "checkpoints", str(step)), "missing_metadata")
  with pytest.raises(CheckpointError, match=r"None of the checkpoints .* \(steps 20, 10\) can be read"):
    train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=3), workdir)
  assert _steps(workdir) == [10, 20]  # Nothing deleted.


def test_a_workdir_of_another_method_is_refused_with_what_differs(tfds_dir, tmp_path):
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), str(tmp_path))
  with pytest.raises(WorkdirError, match="method: 'erm' -> 'mixup'"):
    train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2, method="mixup"), str(tmp_path))


@pytest.mark.parametrize(
  "change, message",
  [
    ({"optimizer.name": "adamw"}, r"differs: opt_state/.* absent saved, .* now.*optimizer.name: 'sgd' -> 'adamw'"),
    ({"model.width": 8}, r"batch_stats/classifier/.* \(4,\) saved, \(8,\) now.* and \d+ more.*model.width: 4 -> 8"),
  ],
)  # fmt: skip
def test_a_workdir_whose_state_has_other_arrays_is_refused_with_what_differs(tfds_dir, tmp_path, change, message):
  """The saved arrays' names and shapes are compared with the new run's (from the checkpoint's metadata), so
  any setting that changes the state is caught, with the config keys that differ, before anything trains."""
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), str(tmp_path))
  with pytest.raises(WorkdirError, match=message) as refused:
    train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=2, **change), str(tmp_path))
  assert "\n" not in str(refused.value) and "Use another --workdir" in str(refused.value)
  assert _steps(str(tmp_path)) == [10]


def test_a_finished_run_rerun_says_so_and_writes_nothing(tfds_dir, tmp_path, capsys):
  workdir = str(tmp_path)
  first = train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), workdir)
  events = sorted(os.listdir(os.path.join(workdir, "tensorboard")))
  again = train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1), workdir)
  assert "is finished (10 steps); nothing to train" in capsys.readouterr().out
  assert again["reported_top1"] == first["reported_top1"]
  assert sorted(os.listdir(os.path.join(workdir, "tensorboard"))) == events


def test_a_full_disk_during_a_save_names_the_last_complete_checkpoint(tfds_dir, tmp_path, monkeypatch):
  """A write error ENOSPC injected into orbax's own writer of the checkpoint's JSON part."""
  original = json_checkpoint_handler.JsonCheckpointHandler._save_fn
  saves = []

  async def fill_the_disk_after_two_saves(self, x, directory):
    saves.append(directory)
    if len(saves) > 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    await original(self, x, directory)

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", fill_the_disk_after_two_saves)
  config = tiny_config(tfds_dir, num_epochs=2, **{"checkpoint.every_steps": 4})
  with pytest.raises(
    CheckpointError,
    match=r"is full: a checkpoint could not be written and the run stopped; the last complete checkpoint is step 8\.",
  ):
    train.train_and_evaluate(config, str(tmp_path))
  assert _steps(str(tmp_path)) == [4, 8]


def _make_unwritable(directory) -> bool:
  """Makes `directory` unwritable (immutable for root); False where this machine cannot."""
  if os.geteuid() == 0:  # Root writes through permissions.
    return subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0
  directory.chmod(0o555)
  return True


@pytest.mark.parametrize("kind", ["file", "read_only", "read_only_checkpoints"])
def test_an_unusable_workdir_is_one_line_before_anything_is_built(tfds_dir, tmp_path, kind):
  workdir = tmp_path / "run"
  unwritable = {"read_only": workdir, "read_only_checkpoints": workdir / "checkpoints"}.get(kind)
  if kind == "file":
    workdir.write_text("not a directory")
  else:
    unwritable.mkdir(parents=True)
    if not _make_unwritable(unwritable):
      pytest.skip("no way to make a directory unwritable for root here")
  try:
    started = time.monotonic()
    process = _popen(_command(str(workdir), tfds_dir))
    stdout, stderr = process.communicate(timeout=120)
  finally:
    if unwritable is not None and os.geteuid() == 0:
      subprocess.run(["chattr", "-i", str(unwritable)])
  lines = _error_lines(stderr)
  assert process.returncode == 1 and len(lines) == 1, stderr
  expected = {"file": "is a file, not a directory", "read_only": f"--workdir {workdir} cannot be written"}.get(
    kind, f"The checkpoint folder {workdir}/checkpoints cannot be written"
  )
  assert expected in lines[0] and "epoch" not in stdout
  assert time.monotonic() - started < 60  # Rejected at start-up, not after a compilation.


@contextlib.contextmanager
def _small_disk(path, megabytes: int):
  """A real filesystem of `megabytes` mounted at `path` (tmpfs), or a skip where this machine cannot mount."""
  path.mkdir()
  mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True
  )
  if mounted.returncode:
    pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.strip()})")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)])


@pytest.mark.slow
def test_a_real_full_disk_stops_with_one_line_and_the_run_resumes_once_space_is_freed(tfds_dir, tmp_path):
  with _small_disk(tmp_path / "disk", 40) as disk:
    workdir = str(disk / "run")
    trainer = _popen(_command(workdir, tfds_dir))
    _wait_for(lambda: _steps(workdir), trainer)
    filler = disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"], capture_output=True)
    _, stderr = trainer.communicate(timeout=180)
    lines = _error_lines(stderr)
    assert trainer.returncode == 1 and len(lines) == 1, stderr
    last = _steps(workdir)[-1]
    assert (
      f"is full: a checkpoint could not be written and the run stopped; the last complete checkpoint is step {last}"
      in lines[0]
    )
    assert not [name for name in os.listdir(os.path.join(workdir, "checkpoints")) if not name.isdigit()]  # Freed.
    filler.unlink()
    rerun = _popen(_command(workdir, tfds_dir))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert f"Resuming from step {last}" in stdout and _steps(workdir)[-1] == 60


def test_config_mistakes_are_one_line(tmp_path):
  cases = {
    ("--config.num_epoch=3",): 'num_epoch is not a config key. Did you mean "num_epochs"',
    ("--config.num_epochs=abc",): "error: --config.num_epochs must be an integer, not 'abc'.",
    ("--config.log.progress=yes",): "error: --config.log.progress must be True or False, not 'yes'.",
    ("--config.optimizer.lr=fast",): "error: --config.optimizer.lr must be a number, not 'fast'.",
  }
  for extra, expected in cases.items():
    command = [sys.executable, "-m", "adamix_jax.main", "--config", "configs/quickstart.py", "--workdir", str(tmp_path)]
    process = subprocess.run([*command, *extra], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = process.stderr.strip().splitlines()  # Exactly the error: no library start-up notices before it.
    assert process.returncode == 1 and len(lines) == 1 and expected in lines[0], process.stderr
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  for path, expected in ((str(bad), "invalid syntax"), ("configs/missing.py", "No such file or directory")):
    command = [sys.executable, "-m", "adamix_jax.main", "--config", path, "--workdir", str(tmp_path / "w")]
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = _error_lines(process.stderr)
    assert process.returncode == 1 and len(lines) == 1 and expected in lines[0], process.stderr
  assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
def test_after_sigkill_the_next_run_takes_over_the_lock_and_skips_a_damaged_checkpoint(tfds_dir, tmp_path):
  workdir = str(tmp_path / "run")
  process = _popen(_command(workdir, tfds_dir))
  _wait_for(lambda: len(_steps(workdir)) >= 2, process)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  assert os.path.exists(os.path.join(workdir, LOCK_NAME))
  latest, previous = _steps(workdir)[-1], _steps(workdir)[-2]
  _damage(os.path.join(workdir, "checkpoints", str(latest)), "truncated_data")
  rerun = _popen(_command(workdir, tfds_dir))
  stdout, stderr = rerun.communicate(timeout=300)
  assert rerun.returncode == 0, stderr
  assert "Taking over the lock" in stdout and f"warning: checkpoint step {latest}" in stdout
  assert _error_lines(stderr) == []  # The one warning: none of orbax's error logs and tracebacks.
  assert f"Resuming from step {previous}" in stdout
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [(r["step"], r["kind"]) for r in map(json.loads, f)]
  assert len(records) == len(set(records)) and max(step for step, _ in records) == 60
  shutil.rmtree(workdir)


def test_a_run_refused_before_it_writes_anything_leaves_no_workdir_it_created(tfds_dir, tmp_path):
  config = tiny_config(str(tmp_path / "no_images"), **{"data.name": "image_folder", "data.max_train_examples": 0})
  for workdir, existed in ((tmp_path / "new" / "run", False), (tmp_path / "mine", True)):
    if existed:
      workdir.mkdir()
    with pytest.raises(Exception, match="no_images"):
      train.train_and_evaluate(config, str(workdir))
    assert workdir.exists() == existed and not (workdir / "checkpoints").exists()  # A directory made by the user stays.


def test_a_batch_that_leaves_out_much_of_each_epoch_is_a_warning(tfds_dir, tmp_path, capsys):
  train.train_and_evaluate(
    tiny_config(tfds_dir, num_epochs=1, batch_size=100, **{"data.max_train_examples": 180}), str(tmp_path)
  )
  assert (
    "warning: an epoch is 1 full step of 100 examples, so 80 of the 180 training examples (44%) are left out of "
    "every epoch" in capsys.readouterr().out
  )
  train.train_and_evaluate(tiny_config(tfds_dir, num_epochs=1, **{"data.max_train_examples": 190}), str(tmp_path / "b"))
  assert "left out" not in capsys.readouterr().out  # 10 of 190: under a tenth.
