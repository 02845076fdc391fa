"""Library start-up notices are filtered from stderr; every other line is kept. Orbax's own error logs are
left to the run, which reports each failure in one line."""

import logging
import os
import sys
import types

from adamix_jax import quiet
from adamix_jax.quiet import startup_notices_filtered


def test_only_the_known_start_up_notices_are_dropped(capfd):
  with startup_notices_filtered():
    os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see ...\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"E0000 something real went wrong\n")
  err = capfd.readouterr().err
  assert err == "E0000 something real went wrong\n"


def test_checkpoint_logs_left_to_the_run_drops_orbax_records_and_late_event_loop_reports(monkeypatch):
  absl_logger, asyncio_logger = logging.getLogger("absl"), logging.getLogger("asyncio")
  monkeypatch.setattr(absl_logger, "filters", list(absl_logger.filters))
  monkeypatch.setattr(asyncio_logger, "filters", list(asyncio_logger.filters))
  passed_on = []
  monkeypatch.setattr(sys, "unraisablehook", passed_on.append)
  quiet.checkpoint_logs_left_to_the_run()

  def record(path):
    return logging.LogRecord("absl", logging.ERROR, path, 1, "Save failed", None, None)

  assert not absl_logger.filter(record(os.path.join("site-packages", "orbax", "checkpoint", "future.py")))
  assert absl_logger.filter(record(os.path.join("site-packages", "tensorflow_datasets", "core.py")))

  def report(message):
    return logging.LogRecord("asyncio", logging.ERROR, "base_events.py", 1, message, None, None)

  unretrieved = "Future exception was never retrieved\nfuture: <Future finished exception="
  assert not asyncio_logger.filter(report(unretrieved + "ValueError('Error writing in OCDBT database')>"))
  assert asyncio_logger.filter(report(unretrieved + "KeyError('x')>"))
  try:  # A write of orbax's whose failure shows only in the traceback.
    exec(compile("raise FileNotFoundError(2, 'gone')", os.path.join("site-packages", "orbax", "async_path.py"), "exec"))
  except FileNotFoundError:
    from_orbax = report(unretrieved + "FileNotFoundError(2, 'gone')>")
    from_orbax.exc_info = sys.exc_info()
  assert not asyncio_logger.filter(from_orbax)
  late = types.SimpleNamespace(exc_value=RuntimeError("Event loop is closed"))
  other = types.SimpleNamespace(exc_value=RuntimeError("something else"))
  sys.unraisablehook(late)
  sys.unraisablehook(other)
  assert passed_on == [other]
