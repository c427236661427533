"""hand_loop.py's training written differently: a model class, a while loop, the
functional loss, and helpers imported from a sibling module. It trains the same."""

import argparse

import torch
from torch.utils.data import DataLoader, TensorDataset
from training_utils import TwoLayerNet, train_one_epoch


def main(epochs: int) -> None:
    torch.manual_seed(0)
    features = torch.randn(256, 10)
    labels = (features[:, 0] + features[:, 1] > 0).long()
    model = TwoLayerNet(inputs=10, hidden=32, classes=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True)
    for _ in range(epochs):
        train_one_epoch(model, loader, optimizer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    main(parser.parse_args().epochs)
