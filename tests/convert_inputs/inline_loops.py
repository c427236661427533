import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset, random_split

torch.manual_seed(0)
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

features = torch.randn(600, 20)
labels = (features.sum(dim=1) > 0).long()
dataset = TensorDataset(features, labels)
train_ds, val_ds = random_split(dataset, [500, 100])
mnist_train = DataLoader(train_ds, batch_size=32, shuffle=True)
mnist_val = DataLoader(val_ds, batch_size=50)

pytorch_model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 2))
pytorch_model.cuda() if torch.cuda.is_available() else None
cross_entropy_loss = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(pytorch_model.parameters(), lr=1e-3)

num_epochs = 3
for epoch in range(num_epochs):
    pytorch_model.train()
    # TRAINING LOOP
    for i, train_batch in enumerate(mnist_train):
        x, y = train_batch
        x, y = x.to(device), y.to(device)

        logits = pytorch_model(x)
        loss = cross_entropy_loss(logits, y)
        print('train loss: ', loss.item())

        loss.backward()

        optimizer.step()
        optimizer.zero_grad()

    # VALIDATION LOOP
    pytorch_model.eval()
    with torch.no_grad():
        val_loss = []
        for val_batch in mnist_val:
            x, y = val_batch
            x, y = x.to(device), y.to(device)
            logits = pytorch_model(x)
            val_loss.append(cross_entropy_loss(logits, y).item())

        val_loss = torch.mean(torch.tensor(val_loss))
        print('val_loss: ', val_loss.item())
