"""Keeps library start-up banners, and the checkpoint library's own error logs, out of what a user reads.

TensorFlow (which only feeds the input pipeline) writes C++ notices on import that no environment variable
turns off in current releases: "oneDNN custom operations are on ...", "All log messages before
absl::InitializeLog() ...", "This TensorFlow binary is optimized to use available CPU instructions ...".
`startup_notices_filtered()` captures the process's stderr (file descriptor 2) while the libraries load and
writes back every line that is not one of these notices, so a real warning or error is still shown. The
modules that use TensorFlow import it this way (`tf = quiet.import_tensorflow()`).

Orbax logs each failure of a background save or of a read, with its traceback, from each of its threads (a
full disk printed 270 lines) before the failure reaches the run, which reports it in one line naming the
last complete checkpoint. And when a save or a read fails, tensorstore's other writes still finish after
orbax closed their asyncio loop; each then prints a "RuntimeError: Event loop is closed" traceback through
`sys.unraisablehook` (dozens on a full disk, thousands for a damaged checkpoint), and asyncio may report
the failed writes of a save as "Future exception was never retrieved".
`checkpoint_logs_left_to_the_run()` (the training command calls it) drops both; `ADAMIX_JAX_TRACEBACK=1`
keeps them.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import traceback

# Start-up notices of TensorFlow's C++ runtime: informational, the same on every start.
NOTICES = re.compile(
  r"oneDNN custom operations are on|All log messages before absl::InitializeLog\(\) is called"
  r"|This TensorFlow binary is optimized to use available CPU instructions"
  r"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
)


@contextlib.contextmanager
def startup_notices_filtered():
  """Runs the body with stderr captured, then writes back the captured lines that are not NOTICES."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      lines = captured.read().decode(errors="replace").splitlines(keepends=True)
      sys.stderr.write("".join(line for line in lines if not NOTICES.search(line)))
      sys.stderr.flush()


def import_tensorflow():
  """TensorFlow, imported with its start-up notices filtered (once; later calls are free), and its C++
  informational log lines off (TF_CPP_MIN_LOG_LEVEL=2, unless the environment sets it)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with startup_notices_filtered():
    import tensorflow

  return tensorflow


class _NotFromOrbax(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    return f"{os.sep}orbax{os.sep}" not in record.pathname


class _NotALostCheckpointWrite(logging.Filter):
  """Drops asyncio's "exception was never retrieved" reports of checkpoint writes (tensorstore's OCDBT files)."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if "exception was never retrieved" not in message:
      return True
    text = message + ("".join(traceback.format_exception(*record.exc_info)) if record.exc_info else "")
    return not ("OCDBT" in text or f"{os.sep}orbax{os.sep}" in text)


def _late_completion(unraisable) -> bool:
  return isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"


def checkpoint_logs_left_to_the_run() -> None:
  """Drops the log records of the orbax package (they go through absl's logger), asyncio's reports of
  checkpoint writes whose failure nobody retrieved, and the "Event loop is closed" reports of writes that
  complete after a failed save; the run reports every failure itself."""
  logging.getLogger("absl").addFilter(_NotFromOrbax())
  logging.getLogger("asyncio").addFilter(_NotALostCheckpointWrite())
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    if not _late_completion(unraisable):
      previous(unraisable)

  sys.unraisablehook = hook
