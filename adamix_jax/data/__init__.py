"""Datasets, the embedded Fashion-MNIST subset, and the tf.data input pipeline."""

from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.input_pipeline import InputPipeline, num_eval_batches
from adamix_jax.data.labeled_subset import LabeledSubsetError
from adamix_jax.data.sources import DataInfo, DataNotPreparedError, data_info, prepared_builder
from adamix_jax.data.subset_pipeline import SubsetPipeline

__all__ = [
  "DATASETS",
  "DataInfo",
  "DataNotPreparedError",
  "DatasetSpec",
  "InputPipeline",
  "LabeledSubsetError",
  "SubsetPipeline",
  "data_info",
  "num_eval_batches",
  "prepared_builder",
]
