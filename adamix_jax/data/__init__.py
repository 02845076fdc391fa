"""Datasets, the embedded Fashion-MNIST subset, and the tf.data input pipeline."""

from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.input_pipeline import InputPipeline, num_eval_batches
from adamix_jax.data.sources import DataInfo, DataNotPreparedError, data_info, prepared_builder

__all__ = [
  "DATASETS",
  "DataInfo",
  "DataNotPreparedError",
  "DatasetSpec",
  "InputPipeline",
  "data_info",
  "num_eval_batches",
  "prepared_builder",
]
