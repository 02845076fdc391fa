"""The workdir of a training run: checked before anything is built, and held by exactly one trainer.

`prepare(workdir)` makes sure the directory exists and can be written; `WorkdirLock` is taken by the
trainer (process 0 of a multi-host run) for as long as it runs: WORKDIR/lock.json names the holder's
host, pid and start time. A second trainer stops at once with one line naming the holder; a lock left
by a process that no longer runs on this host is taken over with a message. The trainer checks that the
lock still names it before every save and every logged step (`check_held`), and stops if it does not. Readers (pictures,
evaluation, notebooks) take no lock and never write.
"""

import contextlib
import datetime
import errno
import json
import os
import shutil
import socket
import uuid
from collections.abc import Iterator

from etils import epath

LOCK_NAME = "lock.json"


class WorkdirError(RuntimeError):
  """The workdir cannot be used for this run. The message says why and what to do."""


class WorkdirLost(WorkdirError):
  """A running trainer's lock was replaced by another process's: it must stop writing at once."""


def _is_remote(workdir: str) -> bool:
  return "://" in workdir


CHECKPOINTS = "checkpoints"


def _probe(directory: str) -> None:
  """Creates `directory` if needed and writes, then removes, a small file in it (OSError if it cannot)."""
  os.makedirs(directory, exist_ok=True)
  probe = os.path.join(directory, f".write_test_{uuid.uuid4().hex}")
  with open(probe, "w") as f:
    f.write("ok")
  os.remove(probe)


def prepare(workdir: str) -> None:
  """Creates `workdir` and its checkpoints folder if needed and checks that files can be written in both.

  Raises:
    WorkdirError: the path is a file, or a directory cannot be created or written (read-only, full).
  """
  if _is_remote(workdir):  # gs:// and other object stores: no directories to check.
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir {workdir} is a file, not a directory: give a directory for the run.")
  checkpoints = os.path.join(workdir, CHECKPOINTS)
  for directory, what, fix in (
    (workdir, f"--workdir {workdir}", "give a writable directory"),
    (checkpoints, f"The checkpoint folder {checkpoints}", "make it writable or give another --workdir"),
  ):
    try:
      _probe(directory)
    except OSError as error:
      reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error)).lower()
      raise WorkdirError(f"{what} cannot be written ({reason}): {fix}.") from None


@contextlib.contextmanager
def removed_if_left_empty(workdir: str, enabled: bool = True) -> Iterator[None]:
  """Removes `workdir` again if it did not exist before the block and the block fails before writing
  anything in it (a run refused for its data, say): an empty `checkpoints/` folder is all it holds. In a
  workdir that existed, an empty `checkpoints/` folder the block created is removed."""
  local = enabled and not _is_remote(workdir)
  checkpoints = os.path.join(workdir, CHECKPOINTS)
  created, created_checkpoints = local and not os.path.exists(workdir), local and not os.path.exists(checkpoints)
  try:
    yield
  except BaseException:
    if created and _empty(workdir):
      shutil.rmtree(workdir, ignore_errors=True)
    elif created_checkpoints and os.path.isdir(checkpoints) and not os.listdir(checkpoints):
      os.rmdir(checkpoints)
    raise


def _empty(workdir: str) -> bool:
  entries = os.listdir(workdir) if os.path.isdir(workdir) else []
  checkpoints = os.path.join(workdir, CHECKPOINTS)
  return set(entries) <= {CHECKPOINTS} and not (os.path.isdir(checkpoints) and os.listdir(checkpoints))


def _alive_here(holder: dict) -> bool:
  """Whether the holder is a process that still runs on this host (False when it is another host's)."""
  if holder.get("host") != socket.gethostname():
    return True  # Another host's process cannot be checked from here: assume it runs.
  try:
    os.kill(int(holder.get("pid", -1)), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError):
    return True
  return True


def _describe(holder: dict) -> str:
  return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


class WorkdirLock:
  """One trainer per workdir. Use as a context manager; `enabled=False` (the other hosts) does nothing."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.enabled = enabled and not _is_remote(workdir)
    self.record = {
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }

  def _create(self) -> bool:
    try:
      descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(descriptor, "w") as f:
      json.dump(self.record, f)
    return True

  def _holder(self) -> dict:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return {}  # Being written right now, or unreadable: treated as held by an unknown process.

  def acquire(self) -> None:
    """Takes the lock.

    Raises:
      WorkdirError: another trainer that is still running holds it.
    """
    if not self.enabled or self._create():
      return
    holder = self._holder()
    if holder and not _alive_here(holder):
      print(f"Taking over the lock of a trainer that no longer runs ({_describe(holder)}).", flush=True)
      os.remove(self.path)
      if self._create():
        return
      holder = self._holder()
    workdir = os.path.dirname(self.path)
    raise WorkdirError(
      f"{workdir} is being trained by another process ({_describe(holder) if holder else 'unknown holder'}). "
      f"Wait for it, stop it, or use another --workdir; if it is gone, remove {self.path}."
    )

  def check_held(self) -> None:
    """Checks that lock.json still names this trainer; a removed lock is taken again.

    Raises:
      WorkdirLost: another process's record replaced this trainer's.
    """
    if not self.enabled:
      return
    holder = self._holder()
    if holder == self.record or (not os.path.exists(self.path) and self._create()):
      return
    holder = holder or self._holder()
    raise WorkdirLost(
      f"{os.path.dirname(self.path)} was taken by another trainer: {self.path} now names "
      f"{_describe(holder) if holder else 'an unknown holder'}, not this one (pid {self.record['pid']})"
    )

  def release(self) -> None:
    if self.enabled and self._holder() == self.record:
      os.remove(self.path)

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()
