"""Datasets by name (``DATASETS.get(name)(config)``) and the splits of the joint search."""
from autonba.data.datasets import DATASETS, DataConfig, DataSplits, load_data, search_split, train_val_split

__all__ = ["DATASETS", "DataConfig", "DataSplits", "load_data", "search_split", "train_val_split"]
