"""Datasets, the embedded Fashion-MNIST subset, and the tf.data input pipeline."""

from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.input_pipeline import (
  DataInfo,
  DataNotPreparedError,
  InputPipeline,
  data_info,
  normalize,
  num_eval_batches,
  prepared_builder,
)

__all__ = [
  "DATASETS",
  "DataInfo",
  "DataNotPreparedError",
  "DatasetSpec",
  "InputPipeline",
  "data_info",
  "normalize",
  "num_eval_batches",
  "prepared_builder",
]
