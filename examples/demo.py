"""The README's first command: train a small LightningModule on the bundled runtime.

Synthetic data only, so it runs offline in seconds on a CPU.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

from runtime import LightningModule, Trainer, seed_everything


class Regression(LightningModule):
    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
        self.criterion = nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.criterion(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def main() -> None:
    seed_everything(0)
    x = torch.randn(1000, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(1000, 1)
    train_set, val_set = random_split(TensorDataset(x, y), [800, 200])
    trainer = Trainer(max_epochs=3, default_root_dir="demo_output")
    trainer.fit(Regression(), DataLoader(train_set, batch_size=32, shuffle=True), DataLoader(val_set, batch_size=100))
    print(f"final val_loss: {trainer.callback_metrics['val_loss']:.4f}  (logs in {trainer.log_dir})")


if __name__ == "__main__":
    main()
