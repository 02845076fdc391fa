"""Prepares a tensorflow-datasets dataset once, as ArrayRecord, so that training reads it without TensorFlow.

    pip install "adamix_jax[prepare]"    # TensorFlow: needed here only
    python -m adamix_jax.data.prepare cifar100 [--data_dir DIR] [--manual_dir DIR/downloads/manual]

A dataset already prepared in tfds's older tfrecord format (by `tfds.load`, or an earlier adamix_jax) is
converted in place: each tfrecord shard gets an ArrayRecord twin holding the same serialized records, and
the dataset's info lists the added format; nothing is downloaded again. (tfds's own `tfds build` and
`tfds convert_format` commands need apache-beam in tfds 4.9.10; this needs only TensorFlow.)
"""

import argparse
import json
import os
import sys

from adamix_jax.data.datasets import DATASETS, PREPARE_INSTALL

FORMAT = "array_record"  # What training reads (tfds.data_source), without TensorFlow.


def _tensorflow():
  try:
    from adamix_jax import quiet

    return quiet.import_tensorflow()
  except ImportError:
    sys.exit(f"Preparing a tfds dataset needs TensorFlow (training does not): run `{PREPARE_INSTALL}`.")


def readable(builder) -> bool:
  """Whether the prepared files are ArrayRecord (the dataset's format or an added one)."""
  formats = {str(builder.info.file_format.value if builder.info.file_format else "tfrecord")}
  formats |= {str(f) for f in getattr(builder.info.as_proto, "alternative_file_formats", ())}
  return FORMAT in formats


def convert(builder) -> int:
  """Writes an ArrayRecord twin of every tfrecord shard of a prepared builder. Returns the shard count."""
  tf = _tensorflow()
  from array_record.python.array_record_module import ArrayRecordWriter

  directory = str(builder.data_dir)
  shards = sorted(f for f in os.listdir(directory) if ".tfrecord-" in f)
  for name in shards:
    target = os.path.join(directory, name.replace(".tfrecord-", ".array_record-"))
    writer = ArrayRecordWriter(target + ".tmp", "group_size:1")
    for record in tf.data.TFRecordDataset(os.path.join(directory, name)).as_numpy_iterator():
      writer.write(record)
    writer.close()
    os.replace(target + ".tmp", target)
  info_path = os.path.join(directory, "dataset_info.json")
  with open(info_path) as f:
    info = json.load(f)
  formats = info.setdefault("alternativeFileFormats", [])
  if "array_record" not in formats:
    formats.append("array_record")
  with open(info_path + ".tmp", "w") as f:
    json.dump(info, f, indent=2)
  os.replace(info_path + ".tmp", info_path)
  return len(shards)


def prepare(tfds_name: str, data_dir: str | None, manual_dir: str | None = None):
  """The builder of `tfds_name` in `data_dir`, prepared as ArrayRecord (downloaded, or converted from tfrecord)."""
  _tensorflow()
  import tensorflow_datasets as tfds

  builder = tfds.builder(tfds_name, data_dir=data_dir)  # Opened in the format it was prepared in, if it was.
  if builder.is_prepared():
    if not readable(builder):
      print(f"Converting {builder.data_dir} from tfrecord to ArrayRecord (nothing is downloaded).", flush=True)
      convert(builder)
      builder = tfds.builder(tfds_name, data_dir=data_dir)
    return builder
  builder = tfds.builder(tfds_name, data_dir=data_dir, file_format=FORMAT)
  print(f"Preparing {tfds_name} in {builder.data_dir} as ArrayRecord (once).", flush=True)
  config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
  builder.download_and_prepare(download_config=config)
  return builder


def main(argv: list[str] | None = None) -> None:
  tfds_names = sorted(name for name, spec in DATASETS.items() if spec.source == "tfds")
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("name", choices=tfds_names, help="the dataset (config.data.name)")
  parser.add_argument(
    "--data_dir", default=None, help="where tfds keeps prepared data (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)"
  )
  parser.add_argument("--manual_dir", default=None, help="where the official archives were put, offline")
  args = parser.parse_args(argv)
  builder = prepare(DATASETS[args.name].name, args.data_dir or os.environ.get("TFDS_DATA_DIR"), args.manual_dir)
  splits = ", ".join(f"{name} {split.num_examples:,}" for name, split in builder.info.splits.items())
  print(f"{args.name} is prepared in {builder.data_dir} ({splits}); training reads it without TensorFlow.")


if __name__ == "__main__":
  main()
