"""What a search and its retraining share: the run's saved config, the seeding of every epoch's random
streams, and the data loaders whose order depends on (seed, epoch) only."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from autonba.config import load_yaml, validate
from autonba.errors import AutonbaError
from autonba.search import dist as dist_
from autonba.search.config import SearchConfig


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The seed of one random stream of one epoch: a run re-seeds from (seed, epoch) and resumes exactly."""
    return (seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2 ** 63)


def loader(ds: Dataset, batch: int, workers: int, ctx: dist_.Context, seed: int, epoch: int) -> DataLoader:
    """Shuffled, last partial batch dropped; sharded over ranks; the order depends on (seed, epoch) only.
    Batches for a GPU come in pinned memory, so that copying them (``non_blocking``) does not stall it."""
    size = len(ds)  # type: ignore[arg-type]  # autonba's data sets are map-style, with a length
    if size < batch * ctx.world:
        raise AutonbaError(f"the split has {size} images, fewer than one batch of {batch} per process; "
                           "lower the batch size or use more data")
    sampler: Sampler[int]
    if ctx.distributed:
        sampler = DistributedSampler(ds, ctx.world, ctx.rank, shuffle=True, seed=seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(range(size), generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, 1)))
    return DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers,
                      pin_memory=ctx.device.type == "cuda",
                      generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, 2)))


def load_run_config(run_dir: str | Path) -> SearchConfig:
    """The resolved config a run saved when it started."""
    p = Path(run_dir) / "config.yaml"
    return validate(SearchConfig, load_yaml(p, "run config"), f"run config {p}")
