# Word-level language model, structured after the classic PyTorch word_language_model example,
# but trained on a synthetic Markov-chain "corpus" so it runs anywhere.
import math
import time

import torch
import torch.nn as nn

torch.manual_seed(1111)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

ntokens = 40
emsize, nhid, nlayers = 32, 64, 1
bptt = 20
batch_size, eval_batch_size = 16, 10
lr = 5.0
clip = 0.25
epochs = 4


def markov_corpus(n_tokens):
    # each word has 3 preferred successors -> something an LSTM can actually learn
    succ = torch.randint(0, ntokens, (ntokens, 3))
    out = torch.empty(n_tokens, dtype=torch.long)
    out[0] = 0
    for t in range(1, n_tokens):
        out[t] = succ[out[t - 1], torch.randint(0, 3, (1,))]
    return out


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous().to(device)  # (seq_len, batch)


corpus = markov_corpus(6400 + 1000)
train_data = batchify(corpus[:6400], batch_size)  # 400 x 16 -> 20 bptt chunks
val_data = batchify(corpus[6400:], eval_batch_size)


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, inp, hidden):
        emb = self.drop(self.encoder(inp))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].reshape(-1)
    return data, target


model = RNNModel(ntokens, emsize, nhid, nlayers).to(device)
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=lr)


def evaluate(data_source):
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            log_probs = torch.log_softmax(output.view(-1, ntokens), dim=-1)
            total_loss += len(data) * criterion(log_probs, targets).item()
    return total_loss / (len(data_source) - 1)


best_val_loss = None
for epoch in range(1, epochs + 1):
    epoch_start = time.time()
    model.train()
    total_loss, n_batches = 0.0, 0
    hidden = model.init_hidden(batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i)
        hidden = repackage_hidden(hidden)
        optimizer.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(torch.log_softmax(output.view(-1, ntokens), dim=-1), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total_loss += loss.item()
        n_batches += 1

    train_loss = total_loss / n_batches
    val_loss = evaluate(val_data)
    print(f"epoch {epoch}: train_loss={train_loss:.4f} val_loss={val_loss:.4f} "
          f"val_ppl={math.exp(val_loss):.2f} lr={lr:.3f} ({time.time() - epoch_start:.2f}s)")
    if best_val_loss is None or val_loss < best_val_loss:
        best_val_loss = val_loss
    else:
        # anneal the learning rate if no improvement on the validation set
        lr /= 4.0
        for group in optimizer.param_groups:
            group["lr"] = lr
