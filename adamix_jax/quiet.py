"""Keeps library start-up banners out of what a user reads first.

TensorFlow (which only feeds the input pipeline) writes C++ notices on import that no environment variable
turns off in current releases: "oneDNN custom operations are on ...", "All log messages before
absl::InitializeLog() ...", "This TensorFlow binary is optimized to use available CPU instructions ...".
`startup_notices_filtered()` captures the process's stderr (file descriptor 2) while the libraries load and
writes back every line that is not one of these notices, so a real warning or error is still shown. The
modules that use TensorFlow import it this way (`tf = quiet.import_tensorflow()`).
"""

import contextlib
import os
import re
import sys
import tempfile

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
