"""One small module and datamodule, written against either `lightning.pytorch` or `runtime`.

The interop scripts and tests build the same classes on both sides, so a checkpoint written
by one loads into the other's class of the same name and shape.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = 2
BATCHES_PER_EPOCH = 8
LR = 0.05
GAMMA = 0.5


def dataset(n: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, (x ** 2).sum(1, keepdim=True))


def build(pl: ModuleType) -> tuple[type, type]:
    """(InteropRegressor, InteropData) subclassing `pl.LightningModule` / `pl.LightningDataModule`."""

    class InteropRegressor(pl.LightningModule):
        def __init__(self, hidden: int = 8, lr: float = LR) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", F.mse_loss(self(x), y))

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=GAMMA)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    class InteropData(pl.LightningDataModule):
        def __init__(self, batch_size: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()

        def train_dataloader(self) -> DataLoader:
            return DataLoader(dataset(8 * BATCHES_PER_EPOCH, seed=1), batch_size=self.hparams.batch_size,
                              shuffle=True)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(dataset(16, seed=2), batch_size=8)

    return InteropRegressor, InteropData
