"""What a user sees of a run (process 0 only): a progress line, TensorBoard scalars, `metrics.jsonl`.

Files go through `etils.epath` (local paths, or gs:// with gcsfs installed) and TensorBoard's own event
writer: no TensorFlow.
"""

import io
import json
import os
import sys
import time
from typing import Any

import numpy as np
from etils import epath
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def format_duration(seconds: float) -> str:
  """4512.3 -> '1:15:12'."""
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """A progress line per epoch: step, loss, accuracy, images/s and ETA of the whole run.

  On a terminal the line is redrawn in place; otherwise (logs, CI) it is printed every `every_seconds`.
  """

  def __init__(
    self,
    total_steps: int,
    steps_per_epoch: int,
    batch_size: int,
    enabled: bool,
    stream=None,
    every_seconds: float = 30.0,
  ):
    self.total_steps, self.steps_per_epoch, self.batch_size = total_steps, steps_per_epoch, batch_size
    self.enabled = enabled
    self.stream = stream or sys.stderr
    self.interactive = self.stream.isatty()
    self.every_seconds = every_seconds if not self.interactive else 0.2
    self._last_print = 0.0
    self._run_start = None  # (time, step) of the run's first recorded step: the rate over whole epochs.
    self.start_epoch(0)

  def start_epoch(self, epoch: int) -> None:
    self.epoch, self._sums, self._count = epoch, {}, 0
    self._start_time, self._start_step = None, None

  def update(self, step: int, metrics: dict[str, float]) -> None:
    """Records the host-side metrics of the finished `step` (1-based count of steps done)."""
    if self._start_time is None:  # The first step of a run or epoch includes compilation: time from here.
      self._start_time, self._start_step = time.perf_counter(), step
      self._run_start = self._run_start or (self._start_time, step)
    for key, value in metrics.items():
      self._sums[key] = self._sums.get(key, 0.0) + value
    self._count += 1
    now = time.perf_counter()
    if self.enabled and (now - self._last_print >= self.every_seconds or step % self.steps_per_epoch == 0):
      self._last_print = now
      self._print(step, now)

  def images_per_second(self, step: int, now: float) -> float:
    """Training images/s over this epoch's steps so far (0 before the second)."""
    steps = step - self._start_step
    return steps * self.batch_size / (now - self._start_time) if steps else 0.0

  def _run_rate(self, step: int, now: float) -> float:
    """Images/s since the run's first step, evaluations included: what the ETA needs, and the only rate an
    epoch of a single step has."""
    start, first = self._run_start
    return (step - first) * self.batch_size / (now - start) if step > first else 0.0

  def _print(self, step: int, now: float) -> None:
    run_rate = self._run_rate(step, now)
    rate = self.images_per_second(step, now) or run_rate
    eta = (self.total_steps - step) * self.batch_size / (run_rate or rate) if rate else float("nan")
    means = {key: value / self._count for key, value in self._sums.items()}
    in_epoch = (step - 1) % self.steps_per_epoch + 1
    line = f"epoch {self.epoch + 1} [{in_epoch:>{len(str(self.steps_per_epoch))}}/{self.steps_per_epoch}]"
    line += f" loss {means.get('loss', float('nan')):.4f}"
    if "accuracy" in means:
      line += f" acc {100 * means['accuracy']:.2f}%"
    line += f" | {rate:,.0f} img/s | ETA {format_duration(eta) if rate else '?'}"
    end = "\n" if not self.interactive or in_epoch == self.steps_per_epoch else ""
    self.stream.write(("\r" if self.interactive else "") + line + end)
    self.stream.flush()


def _keep_records_up_to(path: str, step: int) -> None:
  """Rewrites the JSON-lines file `path` (if any) without records after `step` and without lines that are not
  whole records (cut short by a kill), so that the next record starts on a line of its own. The lines dropped
  for not being records are named in one warning; records after `step` are written again by the resumed run.
  """
  path = epath.Path(path)
  if not path.exists():
    return
  text = path.read_text()
  lines = text.splitlines()
  kept, broken = [], []
  for number, line in enumerate(lines, start=1):
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      broken.append(number)
  if not text or (len(kept) == len(lines) and text.endswith("\n")):
    return
  if broken:
    shown = ", ".join(map(str, broken[:5])) + (f" and {len(broken) - 5} more" if len(broken) > 5 else "")
    print(f"warning: {path}: dropped line {shown}, not a whole JSON record (a run stopped mid-write).", flush=True)
  partial = path.with_name(path.name + ".partial")
  partial.write_text("".join(line + "\n" for line in kept))
  partial.replace(path)


class TensorBoardWriter:
  """Scalars and images as TensorBoard event files in `logdir`, written by TensorBoard's own writer."""

  def __init__(self, logdir: str):
    self._writer = EventFileWriter(str(logdir))

  def _add(self, step: int, value: summary_pb2.Summary.Value) -> None:
    summary = summary_pb2.Summary(value=[value])
    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

  def scalar(self, step: int, tag: str, value: float) -> None:
    self._add(step, summary_pb2.Summary.Value(tag=tag, simple_value=float(value)))

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    """A uint8 [H, W, 3] picture, PNG-encoded."""
    encoded = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(encoded, format="PNG")
    picture = summary_pb2.Summary.Image(
      height=image.shape[0], width=image.shape[1], colorspace=image.shape[2], encoded_image_string=encoded.getvalue()
    )
    self._add(step, summary_pb2.Summary.Value(tag=tag, image=picture))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MetricWriter:
  """Writes scalars to TensorBoard (`WORKDIR/tensorboard`) and to `WORKDIR/metrics.jsonl`.

  Each JSON line is {"step": int, "kind": "train" | "eval", "metrics": {name: value}}. A run resumed from
  the checkpoint of step `start_step` first drops the lines its interrupted predecessor wrote after that
  step (it writes them again), so each (step, kind) appears once however often the run was stopped.
  """

  def __init__(self, workdir: str, enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    if enabled:
      epath.Path(workdir).mkdir(parents=True, exist_ok=True)  # The workdir may be a gs:// bucket on a pod.
      path = os.path.join(workdir, "metrics.jsonl")
      _keep_records_up_to(path, start_step)
      self._jsonl = epath.Path(path).open("a")
      self._tensorboard = TensorBoardWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, kind: str, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    metrics = {key: float(value) for key, value in metrics.items()}
    self._jsonl.write(json.dumps({"step": step, "kind": kind, "metrics": metrics}) + "\n")
    self._jsonl.flush()
    for key, value in metrics.items():
      self._tensorboard.scalar(step, f"{kind}/{key}", value)
    self._tensorboard.flush()

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """A uint8 [H, W, 3] picture to TensorBoard's Images tab under `name`."""
    if not self.enabled:
      return
    self._tensorboard.image(step, name, image)
    self._tensorboard.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tensorboard.close()
