import gc

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset, random_split
from tqdm import tqdm


class CustomDataset(Dataset):
    def __init__(self, n=400):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 12, generator=g)
        self.y = self.x[:, :3].sum(dim=1, keepdim=True)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def collate(batch):
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.stack(ys)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x):
        return self.fc(x)


# Training
def train(model, train_loader, device, lr=0.0001, optim_class=optim.Adam, scheduler=None):
  criterion = nn.L1Loss()
  optimizer = optim_class(model.parameters(), lr=lr)
  total_loss = 0

  model.train()
  for inputs, labels in tqdm(train_loader):
    inputs, labels = inputs.to(device, dtype=torch.float), labels.to(device, dtype=torch.float)

    optimizer.zero_grad()

    output = model(inputs)

    loss = criterion(output, labels)
    loss.backward()

    optimizer.step()
    if scheduler:
      scheduler.step()

    total_loss += loss.data.item()

    gc.collect()
    torch.cuda.empty_cache()

  return total_loss


# Validation
def valid(model, valid_loader, device):
  criterion = nn.L1Loss()
  total_loss = 0

  model.eval()
  with torch.no_grad():
    for inputs, labels in tqdm(valid_loader):
      inputs, labels = inputs.to(device, dtype=torch.float), labels.to(device, dtype=torch.float)

      output = model(inputs)

      loss = criterion(output, labels)
      total_loss += loss.data.item()

  return total_loss


device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
n_epoch = 3
batch_size = 16
lr = 0.001
optim_class = optim.Adam

dataset = CustomDataset()
train_set, valid_set = random_split(dataset, [320, 80])
train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=collate)
valid_loader = DataLoader(valid_set, batch_size=batch_size, collate_fn=collate)

model = Net()
model.to(device)
for epoch in range(n_epoch):
  print('# Epoch %d / %d' % (epoch + 1, n_epoch))
  train_mae = train(model, train_loader, device, lr=lr, optim_class=optim_class)
  valid_mae = valid(model, valid_loader, device)
  print('Train MAE: %.3f / Validation MAE: %.3f' % (train_mae, valid_mae))
