"""Library start-up notices are filtered from stderr; every other line is kept."""

import os

from adamix_jax.quiet import startup_notices_filtered


def test_only_the_known_start_up_notices_are_dropped(capfd):
  with startup_notices_filtered():
    os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see ...\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"E0000 something real went wrong\n")
  err = capfd.readouterr().err
  assert err == "E0000 something real went wrong\n"
