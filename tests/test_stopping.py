"""Signals inside the training loop: the first is a request the loop reads, a second SIGINT exits at once."""

import os
import signal

import pytest

from adamix_jax import stopping


def test_the_first_signal_is_a_request_and_a_second_sigint_exits_at_once(monkeypatch, capsys):
  exits, released = [], []

  def fake_exit(status):
    exits.append(status)
    raise SystemExit(status)

  monkeypatch.setattr(os, "_exit", fake_exit)
  before = signal.getsignal(signal.SIGINT)
  with stopping.before_exit_at_once(lambda: released.append(True)), stopping.requests() as received:
    os.kill(os.getpid(), signal.SIGTERM)
    assert received == [signal.SIGTERM] and not exits
    with pytest.raises(SystemExit):
      os.kill(os.getpid(), signal.SIGINT)
  assert exits == [130] and released == [True]
  assert "Stopped by SIGINT a second time: stopped at once" in capsys.readouterr().err
  assert signal.getsignal(signal.SIGINT) is before  # Restored when the loop ends.


def test_the_last_checkpoint_note_reads_the_step_folders(tmp_path):
  assert stopping.last_checkpoint_note(str(tmp_path / "absent")) == "No checkpoint was written."
  for name in ("10", "20", "30.orbax-checkpoint-tmp-1", "20.damaged-20261205"):
    (tmp_path / name).mkdir()
  assert stopping.last_checkpoint_note(str(tmp_path)) == f"The last complete checkpoint is step 20 in {tmp_path}."
