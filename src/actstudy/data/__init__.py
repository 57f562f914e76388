"""Datasets as tensors: readers (CIFAR-10, MNIST, procedural shapes) and the tensor-resident loader."""

from actstudy.data.datamodule import ImageSplits, TensorDataModule, load_splits
from actstudy.data.raw import DatasetUnavailable, RawSplits
from actstudy.data.tensor_loader import TensorLoader

__all__ = [
    "DatasetUnavailable",
    "ImageSplits",
    "RawSplits",
    "TensorDataModule",
    "TensorLoader",
    "load_splits",
]
