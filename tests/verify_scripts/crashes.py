"""Fails in its first forward pass: the layer does not fit the data."""

import torch
from torch import nn

model = nn.Linear(8, 2)
batch = torch.randn(4, 10)
loss = model(batch).sum()
loss.backward()
