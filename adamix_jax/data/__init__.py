"""Datasets (tfds, image folders, numpy arrays, the embedded Fashion-MNIST subset) and the input pipeline.

Nothing here imports TensorFlow: prepared tfds datasets are read as ArrayRecord (`tfds_source`), images are
decoded with PIL and augmented with numpy (`augment`, `rand_augment`) in host threads (`loader`).
"""

from adamix_jax.data.datasets import DATASETS, DatasetSpec
from adamix_jax.data.image_folder import FolderLayoutError, UnreadableImageError
from adamix_jax.data.input_pipeline import InputPipeline, num_eval_batches
from adamix_jax.data.labeled_subset import LabeledSubsetError
from adamix_jax.data.sources import DataInfo, data_info, open_dataset, register_arrays
from adamix_jax.data.splits import DataNotPreparedError
from adamix_jax.data.subset_pipeline import SubsetPipeline

__all__ = [
  "DATASETS",
  "DataInfo",
  "DataNotPreparedError",
  "DatasetSpec",
  "FolderLayoutError",
  "InputPipeline",
  "LabeledSubsetError",
  "SubsetPipeline",
  "UnreadableImageError",
  "data_info",
  "num_eval_batches",
  "open_dataset",
  "register_arrays",
]
