"""hand_loop.py's training as a LightningModule on the bundled runtime.

With the import switched to `lightning.pytorch` it runs on Lightning unchanged.
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from runtime import LightningModule, Trainer


class Classifier(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
        self.loss_fn = nn.CrossEntropyLoss()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    features = torch.randn(256, 10)
    labels = (features[:, 0] + features[:, 1] > 0).long()
    model = Classifier()
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True)
    trainer = Trainer(
        max_epochs=args.epochs,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, train_dataloaders=loader)
