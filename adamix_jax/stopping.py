"""How a training run stops on SIGINT (Ctrl-C) and SIGTERM: one line, exit status 128 + the signal's number.

Inside the training loop (`requests()`), the first signal is a request: the loop saves a checkpoint after the
step under way and stops (`train.Interrupted`); a second SIGINT ends the process at once, without waiting for
that save (the last complete checkpoint is then the one a rerun resumes from).

Outside the loop, the training command (`main`) installs `exit_at_once()` before anything is imported: during
start-up (imports, reading the data, compiling) and after the last checkpoint nothing is being saved, so a
signal ends the process at once. It ends with `os._exit`, as the second SIGINT does: a KeyboardInterrupt
raised in the middle of JAX's start-up can be swallowed (a garbage-collection callback of XLA ignores it, and
the run went on), and unwinding the interpreter while XLA's compiler threads run ended in a segmentation
fault. The functions registered with `before_exit_at_once` run first: releasing the workdir's lock, and
naming its last complete checkpoint in the line.
"""

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_before_exit: list[Callable[[], str | None]] = []


def _exit_now(signum: int, message: str) -> None:
  notes = []
  for callback in reversed(_before_exit):
    with contextlib.suppress(Exception):
      notes.append(callback())
  text = " ".join([f"Stopped by {signal.Signals(signum).name} {message}", *filter(None, notes)])
  print(text, file=sys.stderr, flush=True)
  os._exit(128 + signum)


def last_checkpoint_note(directory: str) -> str:
  """ "The last complete checkpoint is step N in DIR." (or that there is none), read from the folder names."""
  steps = [int(name) for name in os.listdir(directory) if name.isdigit()] if os.path.isdir(directory) else []
  return f"The last complete checkpoint is step {max(steps)} in {directory}." if steps else "No checkpoint was written."


def _outside_the_loop(signum, frame) -> None:
  _exit_now(signum, "before training started or after its last checkpoint: nothing unsaved was lost. "
            "Rerun the same command to continue.")  # fmt: skip


def exit_at_once() -> None:
  """Makes SIGINT and SIGTERM end the process at once with one line (the training command, outside the loop)."""
  for sig in SIGNALS:
    signal.signal(sig, _outside_the_loop)


@contextlib.contextmanager
def before_exit_at_once(callback: Callable[[], str | None]) -> Iterator[None]:
  """Runs `callback` before an immediate exit that happens inside the block; the text it returns (if any)
  is added to the exit's line."""
  _before_exit.append(callback)
  try:
    yield
  finally:
    _before_exit.remove(callback)


@contextlib.contextmanager
def requests() -> Iterator[list[int]]:
  """Inside the block, SIGTERM and SIGINT are appended to the yielded list, which the loop checks between
  steps; a second SIGINT ends the process at once. The previous handlers are restored on exit."""
  received: list[int] = []

  def handler(signum, frame) -> None:
    if received and signum == signal.SIGINT:
      _exit_now(signum, "a second time: stopped at once, without waiting for the checkpoint under way. Rerun "
                "the same command to resume from the last complete checkpoint.")  # fmt: skip
    received.append(signum)

  previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)
