"""Stream blendkit's WebDataset shards (docs/contract.md) into training batches.

``make_loader(DataConfig(...), rank=, world_size=)`` composes the stages in ``loader.py``;
each stage lives in its own module.
"""

from blendkit.format.layout import list_shards
from trainer.data.batch import Batch
from trainer.data.loader import Loader, make_loader
from trainer.data.stats import LoaderStats
from trainer.data.stream_config import DataConfig

__all__ = ["Batch", "DataConfig", "Loader", "LoaderStats", "list_shards", "make_loader"]
