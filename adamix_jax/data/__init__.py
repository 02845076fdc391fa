"""Datasets, the embedded Fashion-MNIST subset, and the tf.data input pipeline."""

from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.input_pipeline import (
  DataInfo,
  DataNotPreparedError,
  data_info,
  eval_batches,
  normalize,
  num_eval_batches,
  prepared_builder,
  train_batches,
)

__all__ = [
  "DATASETS",
  "DataInfo",
  "DataNotPreparedError",
  "DatasetSpec",
  "data_info",
  "eval_batches",
  "normalize",
  "num_eval_batches",
  "prepared_builder",
  "train_batches",
]
