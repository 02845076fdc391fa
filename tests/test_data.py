"""The input pipeline: the embedded dataset, determinism and resume, evaluation coverage, offline errors."""

import socket
import time

import numpy as np
import pytest
from helpers import tiny_config

from adamix_jax import data
from adamix_jax.config import ConfigError
from adamix_jax.data.input_pipeline import generator
from adamix_jax.images import denormalize, normalize
from adamix_jax.validation import validate


def _pipeline(config):
  return data.InputPipeline(config, data.data_info(config))


def test_embedded_dataset_info(tfds_dir):
  info = data.data_info(tiny_config(tfds_dir, **{"data.max_train_examples": 0, "data.max_eval_examples": 0}))
  assert (info.num_classes, info.image_shape, info.num_train, info.num_eval) == (10, (28, 28, 1), 10_000, 2_000)


def test_embedded_dataset_is_class_balanced_real_fashion_mnist():
  from adamix_jax.data import fashion_mnist_subset

  arrays = fashion_mnist_subset.load_arrays()
  assert np.array_equal(np.bincount(arrays["train_labels"]), np.full(10, 1000))
  assert np.array_equal(np.bincount(arrays["test_labels"]), np.full(10, 200))
  assert list(arrays["train_labels"][:10]) == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # Fashion-MNIST's first labels.
  assert arrays["train_images"].dtype == np.uint8 and 0.25 < arrays["train_images"].mean() / 255 < 0.32


def test_train_batches_shapes_and_augmentation(tfds_dir):
  config = tiny_config(tfds_dir)
  batches = list(_pipeline(config).train_batches(0))
  assert len(batches) == 10
  assert batches[0]["images"].shape == (20, 28, 28, 1) and batches[0]["images"].dtype == np.uint8
  assert batches[0]["labels"].dtype == np.int32
  plain = list(_pipeline(tiny_config(tfds_dir, **{"data.crop_padding": 0, "data.flip": False})).train_batches(0))
  assert np.array_equal(batches[0]["labels"], plain[0]["labels"])  # Same order, different pixels.
  assert not np.array_equal(batches[0]["images"], plain[0]["images"])
  all_labels = np.concatenate([b["labels"] for b in batches])
  assert len(all_labels) == 200  # An exact permutation of the split.


def test_training_stream_is_deterministic_and_resumable(tfds_dir):
  pipeline = _pipeline(tiny_config(tfds_dir))
  epoch1 = list(pipeline.train_batches(1))
  again = list(pipeline.train_batches(1))  # Now from the cache: the same batches.
  resumed = list(_pipeline(tiny_config(tfds_dir)).train_batches(1, start_batch=7))
  for a, b in zip(epoch1, again, strict=True):
    assert np.array_equal(a["images"], b["images"])
  for a, b in zip(epoch1[7:], resumed, strict=True):
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])
  epoch0 = next(pipeline.train_batches(0))
  assert not np.array_equal(epoch0["labels"], epoch1[0]["labels"])


@pytest.mark.parametrize("process_count", [1, 2, 3])
def test_evaluation_covers_every_example_exactly_once(tfds_dir, process_count):
  config = tiny_config(tfds_dir, **{"data.max_eval_examples": 97, "eval_batch_size": 30})
  info = data.data_info(config)
  seen = []
  counts = set()
  for index in range(process_count):
    pipeline = data.InputPipeline(config, info, process_index=index, process_count=process_count)
    batches = list(pipeline.eval_batches())
    counts.add(len(batches))
    for batch in batches:
      assert batch["images"].shape[0] == 30 // process_count
      seen.append(batch["images"][batch["mask"]].reshape(-1, 28 * 28))
      assert np.all(batch["images"][~batch["mask"]] == 0)
  assert counts == {data.num_eval_batches(info, config, process_count)}  # Same count on every process.
  seen = np.concatenate(seen)
  reference = list(_pipeline(tiny_config(tfds_dir, **{"data.max_eval_examples": 97})).eval_batches())
  reference = np.concatenate([b["images"][b["mask"]].reshape(-1, 28 * 28) for b in reference])
  assert len(seen) == 97
  assert sorted(map(bytes, seen)) == sorted(map(bytes, reference))


def test_missing_dataset_fails_fast_offline(tmp_path, monkeypatch):
  def no_network(*args, **kwargs):
    raise OSError("network is unreachable")

  monkeypatch.setattr(socket, "create_connection", no_network)  # Offline, even on a connected machine.
  config = tiny_config(str(tmp_path), **{"data.name": "cifar100"})
  start = time.perf_counter()
  with pytest.raises(data.DataNotPreparedError) as error:
    data.data_info(config)
  assert time.perf_counter() - start < 5
  message = str(error.value)
  assert str(tmp_path / "cifar100") in message and "python -m adamix_jax.data.prepare cifar100" in message
  assert "cifar-100-binary.tar.gz" in message


def test_missing_dataset_with_download_disabled(tmp_path):
  config = tiny_config(str(tmp_path), **{"data.name": "cifar10", "data.download": False})
  with pytest.raises(data.DataNotPreparedError, match="config.data.download is False"):
    data.data_info(config)


def test_normalize_and_denormalize():
  images = np.array([[[[0, 255]]]], np.uint8)
  out = np.asarray(normalize(images, (0.5, 0.5), (0.25, 0.5)))
  np.testing.assert_allclose(out, [[[[-2.0, 1.0]]]])
  np.testing.assert_array_equal(denormalize(out, (0.5, 0.5), (0.25, 0.5)), images)


def test_input_generators_differ_for_every_key_word_without_limits():
  keys = [(s, 0, e, k, kind, 0, 0) for s in (0, 1) for e in (0, 10**6) for k in (0, 5000) for kind in (0, 1, 2)]
  keys += [(0, 0, 0, 0, 2, 0, i) for i in (1, 2, 2**40)] + [(0, 1, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 1, 0)]
  draws = {tuple(generator(*key).integers(0, 2**62, 2)) for key in keys}
  assert len(draws) == len(keys) == 29  # Seeds, epochs, slices, kinds, images, streams and views all count.
  assert np.array_equal(generator(3, 0, 4, 5, 1).random(3), generator(3, 0, 4, 5, 1).random(3))


def test_input_slices_make_batches_independent_of_the_process_count(tfds_dir):
  config = tiny_config(tfds_dir, **{"data.input_slices": 2})
  info = data.data_info(config)
  single = list(data.InputPipeline(config, info).train_batches(1))
  hosts = [list(data.InputPipeline(config, info, process_index=i, process_count=2).train_batches(1)) for i in range(2)]
  assert len(single) == len(hosts[0]) == len(hosts[1]) == 10
  for whole, first, second in zip(single, *hosts, strict=True):
    assert np.array_equal(whole["images"], np.concatenate([first["images"], second["images"]]))
    assert np.array_equal(whole["labels"], np.concatenate([first["labels"], second["labels"]]))
  default = list(data.InputPipeline(tiny_config(tfds_dir), info).train_batches(1))  # One slice: other batches.
  assert not np.array_equal(default[0]["labels"], single[0]["labels"])
  with pytest.raises(ConfigError, match="input_slices = 3 must be a multiple of the 2 processes"):
    validate(tiny_config(tfds_dir, **{"data.input_slices": 3}), 1, process_count=2)


def test_reading_the_first_test_images_leaves_evaluation_whole(tfds_dir):
  config = tiny_config(tfds_dir)
  pipeline = _pipeline(config)
  images, labels = pipeline.first_eval_examples(8)
  assert images.shape == (8, 28, 28, 1) and labels.shape == (8,)
  counted = sum(int(batch["mask"].sum()) for batch in pipeline.eval_batches())
  assert counted == 100  # A partly read cache once truncated evaluation to the first batch.
  first = next(pipeline.eval_batches())
  assert np.array_equal(first["images"][:8], images)


def test_the_stream_does_not_depend_on_the_thread_count(tfds_dir):
  options = {"data.randaugment.num_ops": 2, "data.cutout.size": 6}  # Per-image generators too.
  streams = []
  for workers in (1, 3):
    config = tiny_config(tfds_dir, **options, **{"data.workers": workers})
    pipeline = data.InputPipeline(config, data.data_info(config))
    streams.append(list(pipeline.train_batches(0)) + list(pipeline.eval_batches()))
  for one, three in zip(*streams, strict=True):
    for key in one:
      np.testing.assert_array_equal(one[key], three[key])
