"""The task the DDP tests train, in 2 processes and, for reference, in one.

No dropout and no random augmentation: with every random draw in the sampler, a 2-rank run
and a single-process run over the same samples per step compute the same averaged gradient.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Sampler, TensorDataset

from runtime import LightningModule
from runtime.callbacks import Callback
from runtime.rank_zero import rank_zero_only

SAMPLES = 64
RANK_BATCH = 4
WORLD_SIZE = 2
SEED = 123


def dataset(n: int = SAMPLES, seed: int = 7) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, (x ** 2).sum(1, keepdim=True))


def train_loader(shuffle: bool) -> DataLoader:
    return DataLoader(dataset(), batch_size=RANK_BATCH, shuffle=shuffle)


def val_loader() -> DataLoader:
    return DataLoader(dataset(16, seed=8), batch_size=RANK_BATCH)


class Regressor(LightningModule):
    """Logs synced and per-rank values; `crash_rank` raises in training_step on that rank at its 4th batch."""

    def __init__(self, lr: float = 0.05, crash_rank: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def training_step(self, batch, batch_idx):
        if self.global_rank == self.hparams.crash_rank and batch_idx == 3:
            raise RuntimeError(f"planned failure in training_step on rank {self.global_rank}")
        loss = self.loss(batch)
        self.log_rank_values(loss)
        return loss

    def log_rank_values(self, loss: torch.Tensor) -> None:
        value = float(self.global_rank + 1)
        self.log("train_loss", loss, sync_dist=True, on_step=True, on_epoch=True)
        self.log("local_loss", loss, on_step=False, on_epoch=True)
        self.log("rank_mean", value, sync_dist=True, on_step=False, on_epoch=True)
        self.log("rank_sum", value, sync_dist=True, reduce_fx="sum", on_step=False, on_epoch=True)
        self.log("rank_max", value, sync_dist=True, reduce_fx="max", on_step=False, on_epoch=True)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss(batch), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class ManualRegressor(Regressor):
    """The same training step, written with manual optimization."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__(lr)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.loss(batch)
        self.manual_backward(loss)
        optimizer.step()
        self.log_rank_values(loss)


class StopOnRank(Callback):
    """Asks to stop on one rank only, at the end of one epoch; every rank must stop there."""

    def __init__(self, rank: int, epoch: int) -> None:
        self.rank = rank
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.global_rank == self.rank and trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class DumpAtFitEnd(Callback):
    """Each rank writes what it ended with to `<out>/<tag>_rank<R>.pt`, for the test to compare."""

    def __init__(self, out: str, tag: str) -> None:
        self.out = out
        self.tag = tag

    def on_fit_end(self, trainer, pl_module):
        bar = trainer.progress_bar_callback
        state = {
            "weights": {name: tensor.detach().cpu().clone() for name, tensor in pl_module.state_dict().items()},
            "metrics": {name: float(value) for name, value in trainer.callback_metrics.items()},
            "world_size": trainer.world_size,
            "global_rank": trainer.global_rank,
            "local_rank": trainer.local_rank,
            "node_rank": trainer.node_rank,
            "is_global_zero": trainer.is_global_zero,
            "progress_bar_enabled": bar is not None and bar.is_enabled,
            "rank_zero_only_rank": rank_zero_only.rank,
            "current_epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "train_batches": trainer.num_training_batches,
            "pid": os.getpid(),
        }
        torch.save(state, Path(self.out) / f"{self.tag}_rank{trainer.global_rank}.pt")


class InterleavedRanksSampler(Sampler[int]):
    """A single process's view of a 2-rank epoch: per step, rank 0's batch then rank 1's.

    It draws the permutation DistributedSampler draws (seed + epoch), so a loader over it with
    batch size WORLD_SIZE * RANK_BATCH sees, step for step, the union of what the ranks saw.
    """

    def __init__(self, n: int, shuffle: bool, seed: int = SEED) -> None:
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.n))
        per_rank = [order[rank::WORLD_SIZE] for rank in range(WORLD_SIZE)]
        for start in range(0, len(per_rank[0]), RANK_BATCH):
            for rank_order in per_rank:
                yield from rank_order[start:start + RANK_BATCH]


def reference_loader(shuffle: bool) -> DataLoader:
    return DataLoader(dataset(), batch_size=WORLD_SIZE * RANK_BATCH,
                      sampler=InterleavedRanksSampler(SAMPLES, shuffle))
