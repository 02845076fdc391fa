"""Prepared tensorflow-datasets, read without TensorFlow: ArrayRecord files through `tfds.data_source`.

A dataset is prepared once (TensorFlow is needed for that only: `pip install "adamix_jax[prepare]"`, then
`python -m adamix_jax.data.prepare NAME`), and read after by random access. One that is missing is
prepared here only when that can succeed now (TensorFlow installed, `config.data.download` set, the
source reachable within seconds); otherwise this fails at once (never tfds's minutes-long download retry
loop) with the directory searched and the command that prepares it.
"""

import concurrent.futures
import contextlib
import io
import socket
import urllib.parse

import tensorflow_datasets as tfds
from absl import logging as absl_logging

from adamix_jax.data import prepare
from adamix_jax.data.datasets import PREPARE_INSTALL, DatasetSpec
from adamix_jax.data.options import DataOptions
from adamix_jax.data.splits import DataNotPreparedError, Dataset, Split, normalisation


@contextlib.contextmanager
def quiet_tfds():
  """Silences tfds's own messages: its "Downloading and preparing" line (said even when nothing is
  downloaded), its progress bars and its absl warnings (such as "OpenCV is not installed"). Errors raise."""
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    tfds.display_progress_bar(True)
    absl_logging.set_verbosity(verbosity)


def reachable(url: str, timeout: float = 3.0) -> bool:
  """Whether a TCP connection to `url`'s host opens within `timeout` seconds, name lookup included.

  tfds has no connect timeout of its own: offline, its download retries for minutes. The lookup (which
  `socket` cannot time out) runs in a worker thread so the answer comes within `timeout` in any case.
  """
  parsed = urllib.parse.urlparse(url)
  port = parsed.port or (443 if parsed.scheme == "https" else 80)

  def connect():
    with socket.create_connection((parsed.hostname, port), timeout=timeout):
      return True

  pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
  try:
    return pool.submit(connect).result(timeout=timeout)
  except Exception:  # Any failure (no route, no name, refused, timeout) means: not reachable now.
    return False
  finally:
    pool.shutdown(wait=False)


def has_tensorflow() -> bool:
  try:
    import tensorflow  # noqa: F401
  except ImportError:
    return False
  return True


def _not_prepared(spec: DatasetSpec, builder, reason: str) -> DataNotPreparedError:
  data_dir = str(builder._data_dir_root)
  return DataNotPreparedError(
    f"Dataset {spec.name!r} is not prepared in {builder.data_dir} ({reason}).\n"
    f"{spec.prepare_hint.replace('DIR', data_dir)}\n"
    "Point config.data.data_dir (or TFDS_DATA_DIR) at the directory that holds the prepared data."
  )


def prepared_builder(spec: DatasetSpec, options: DataOptions, data_dir: str):
  """The tfds builder of `spec`, prepared as ArrayRecord (prepared here first when that can succeed now).

  Raises:
    DataNotPreparedError: the data is missing, or prepared in the old tfrecord format only, and cannot be
      prepared now; the message says how.
  """
  with quiet_tfds():  # Its "no dataset_info.json" warning before a first preparation says nothing useful.
    builder = tfds.builder(spec.name, data_dir=data_dir)
    prepared = builder.is_prepared()
  if prepared and prepare.readable(builder):
    return builder
  if prepared:
    raise DataNotPreparedError(
      f"Dataset {spec.name!r} in {builder.data_dir} is prepared as tfrecord, which is read only with TensorFlow. "
      f"Convert it once to ArrayRecord (beside the tfrecord files): `{PREPARE_INSTALL}`, then "
      f"`python -m adamix_jax.data.prepare {options.name} --data_dir {builder._data_dir_root}`."
    )
  urls = list(getattr(builder, "url_infos", None) or {})
  if not options.download:
    raise _not_prepared(spec, builder, "config.data.download is False")
  if not has_tensorflow():
    raise _not_prepared(spec, builder, "preparing it needs TensorFlow, which is not installed")
  if not (urls and all(reachable(url) for url in urls)):
    raise _not_prepared(spec, builder, f"{urls[0] if urls else 'its source'} cannot be reached")
  return prepare.prepare(spec.name, data_dir)


def open_dataset(spec: DatasetSpec, options: DataOptions, data_dir: str) -> Dataset:
  """A prepared tfds dataset as a `Dataset` whose splits read encoded images by random access."""
  builder = prepared_builder(spec, options, data_dir)
  info = builder.info
  image_key, label_key = info.supervised_keys
  shape, label = info.features[image_key].shape, info.features[label_key]
  channels = shape[-1] or 3
  image_size = shape[0] if shape[0] and shape[0] == shape[1] else 0

  def open_split(name: str) -> Split:
    with quiet_tfds():
      source = builder.as_data_source(
        split=name, decoders={image_key: tfds.decode.SkipDecoding()}, file_format=prepare.FORMAT
      )

    def read(index: int) -> tuple[bytes, int]:
      example = source[index]
      return example[image_key], int(example[label_key])

    return Split(None, read=read, size=len(source), one_size=bool(image_size))

  mean, std = normalisation(options, spec, lambda: open_split(options.splits(spec)[0]), channels)
  num_examples = lambda name: info.splits[name].num_examples
  return Dataset(spec, tuple(label.names), channels, image_size, mean, std, open_split, num_examples)
