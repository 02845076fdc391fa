"""What a run writes for people to read: metrics.jsonl and TensorBoard events, without TensorFlow."""

import glob
import io
import json
import os

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2

from adamix_jax import reporting
from adamix_jax.reporting import MetricWriter


def _events(directory):
  """The summary events of the one event file in `directory`, as written (TensorBoard's reader would convert
  them to its tensor form; the values are the same)."""
  (path,) = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
  events = [event_pb2.Event.FromString(record) for record in RawEventFileLoader(path).Load()]
  return [event for event in events if event.HasField("summary")]


def test_scalars_and_a_picture_reach_tensorboard_and_metrics_jsonl(tmp_path):
  writer = MetricWriter(str(tmp_path))
  writer.write(10, "train", {"loss": 2.5, "accuracy": np.float32(0.25)})
  picture = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
  writer.write_image(10, "mixing/samples_and_masks", picture)
  writer.write(20, "eval", {"online/one/top1": 81.5})
  writer.close()
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert records == [
    {"step": 10, "kind": "train", "metrics": {"loss": 2.5, "accuracy": 0.25}},
    {"step": 20, "kind": "eval", "metrics": {"online/one/top1": 81.5}},
  ]
  values = {(e.step, v.tag): v for e in _events(tmp_path / "tensorboard") for v in e.summary.value}
  assert values[10, "train/loss"].simple_value == 2.5 and values[20, "eval/online/one/top1"].simple_value == 81.5
  image = values[10, "mixing/samples_and_masks"].image
  assert (image.height, image.width, image.colorspace) == (6, 4, 3)
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(image.encoded_image_string))), picture)


def test_a_resumed_writer_drops_the_records_after_its_checkpoint(tmp_path):
  writer = MetricWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write(step, "train", {"loss": float(step)})
  writer.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 40, "kind": "tr')  # Cut short by a kill.
  MetricWriter(str(tmp_path), start_step=20).close()
  assert [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")] == [10, 20]


def test_metrics_jsonl_stays_valid_json_lines_and_a_repair_says_what_it_dropped(tmp_path, capsys):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 10, "kind": "train", "metrics": {}}')  # A whole record without its newline.
  writer = MetricWriter(str(tmp_path), start_step=10)
  writer.write(20, "train", {"loss": 1.0})
  writer.close()
  assert [json.loads(line)["step"] for line in open(path)] == [10, 20]
  assert "warning" not in capsys.readouterr().out  # Nothing was dropped.
  lines = open(path).read().splitlines()
  path.write_text("\n".join([lines[0], '{"step": 15, "ki', lines[1]]) + "\n")  # A line cut mid-file.
  MetricWriter(str(tmp_path), start_step=20).close()
  assert [json.loads(line)["step"] for line in open(path)] == [10, 20]
  assert f"warning: {path}: dropped line 2, not a whole JSON record" in capsys.readouterr().out


def test_the_progress_line_has_a_rate_and_an_eta_on_epochs_of_one_step(monkeypatch):
  now = [0.0]
  monkeypatch.setattr(reporting.time, "perf_counter", lambda: now[0])
  stream = io.StringIO()
  progress = reporting.Progress(total_steps=5, steps_per_epoch=1, batch_size=10, enabled=True, stream=stream)
  for step in range(1, 4):  # One second a step (evaluation included), each epoch one step.
    progress.start_epoch(step - 1)
    progress.update(step, {"loss": 1.0})
    now[0] += 1.0
  lines = stream.getvalue().splitlines()
  assert lines[0].endswith("| 0 img/s | ETA ?")  # The first step: no time measured yet.
  assert lines[2] == "epoch 3 [1/1] loss 1.0000 | 10 img/s | ETA 0:00:02"
