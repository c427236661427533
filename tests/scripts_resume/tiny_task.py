"""The training task of the exact-resume tests: every random draw an interruption could disturb.

Shuffled loader (global torch RNG), dropout, Adam + StepLR, validation each epoch. The data
come from a private generator, so a restarted process builds the same dataset whatever its
global RNG state.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from runtime import LightningModule, Trainer

BATCHES_PER_EPOCH = 8


def dataset(n: int = 8 * BATCHES_PER_EPOCH, seed: int = 7) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, (x ** 2).sum(1, keepdim=True))


def train_loader() -> DataLoader:
    return DataLoader(dataset(), batch_size=8, shuffle=True)


def val_loader() -> DataLoader:
    return DataLoader(dataset(16, seed=8), batch_size=8)


class DropoutRegressor(LightningModule):
    """Records (global_step, loss) of every training step, to compare runs step by step."""

    def __init__(self, lr: float = 0.05, hidden: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.losses: list[tuple[int, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.losses.append((self.global_step, loss.item()))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def make_trainer(root, max_epochs: int = 4, callbacks=None, **kwargs) -> Trainer:
    args = {"default_root_dir": root, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0}
    return Trainer(max_epochs=max_epochs, callbacks=callbacks, **{**args, **kwargs})


def fit(module: DropoutRegressor, trainer: Trainer, ckpt_path=None) -> None:
    trainer.fit(module, train_loader(), val_loader(), ckpt_path=ckpt_path)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def straight_run(root, max_epochs: int = 4, seed: int = 0, **trainer_args) -> DropoutRegressor:
    """The uninterrupted reference: seed, build, train."""
    torch.manual_seed(seed)
    module = DropoutRegressor()
    fit(module, make_trainer(root, max_epochs=max_epochs, **trainer_args))
    return module
