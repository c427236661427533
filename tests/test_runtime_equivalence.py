"""The core promise: a LightningModule on this Trainer trains bit-identically to the hand loop it stands for.

Each test builds the same network after the same seed, runs a hand-written loop and the
Trainer with its defaults (progress bar, CSV logger, sanity check), and compares every
per-step loss and every final weight with exact equality.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from runtime import LightningModule, Trainer

EPOCHS = 3
BATCH = 16


def dataset(n: int, seed: int) -> TensorDataset:
    """Data from a private generator, so building it draws nothing from the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    return TensorDataset(x, x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=generator))


def network() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))


def loaders() -> tuple[DataLoader, DataLoader]:
    train = DataLoader(dataset(200, seed=1), batch_size=BATCH, shuffle=True)
    val = DataLoader(dataset(64, seed=2), batch_size=BATCH, shuffle=True)
    return train, val


OptimizerFactory = Callable[[object], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], object]


def hand_loop(make_optimizer: OptimizerFactory, make_scheduler: SchedulerFactory | None = None,
              interval: str = "epoch", clip: float | None = None, accumulate: int = 1) -> tuple[list[float], dict]:
    torch.manual_seed(0)
    model = network()
    optimizer = make_optimizer(model.parameters())
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    train, val = loaders()
    losses = []
    for _ in range(EPOCHS):
        model.train()
        last = len(train) - 1
        for i, (x, y) in enumerate(train):
            if i % accumulate == 0:
                optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            losses.append(loss.item())
            (loss / accumulate if accumulate > 1 else loss).backward()
            if (i + 1) % accumulate == 0 or i == last:
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                if scheduler is not None and interval == "step":
                    scheduler.step()
        if scheduler is not None and interval == "epoch":
            scheduler.step()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                F.mse_loss(model(x), y)
    return losses, model.state_dict()


class Regressor(LightningModule):
    def __init__(self, make_optimizer: OptimizerFactory, make_scheduler: SchedulerFactory | None = None,
                 interval: str = "epoch") -> None:
        super().__init__()
        self.model = network()
        self.make_optimizer = make_optimizer
        self.make_scheduler = make_scheduler
        self.interval = interval
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.model(x), y)
        self.losses.append(loss.item())
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.model(x), y), prog_bar=True)

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        scheduler = {"scheduler": self.make_scheduler(optimizer), "interval": self.interval}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def trainer_run(tmp_path, make_optimizer: OptimizerFactory, make_scheduler: SchedulerFactory | None = None,
                interval: str = "epoch", **trainer_args) -> tuple[list[float], dict]:
    torch.manual_seed(0)
    module = Regressor(make_optimizer, make_scheduler, interval)
    train, val = loaders()
    trainer = Trainer(max_epochs=EPOCHS, default_root_dir=tmp_path, **trainer_args)
    trainer.fit(module, train, val)
    return module.losses, module.model.state_dict()


def assert_identical(hand: tuple[list[float], dict], ours: tuple[list[float], dict]) -> None:
    hand_losses, hand_weights = hand
    our_losses, our_weights = ours
    assert our_losses == hand_losses
    assert hand_weights.keys() == our_weights.keys()
    for name in hand_weights:
        assert torch.equal(hand_weights[name], our_weights[name]), name


def sgd_momentum(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def adam(params):
    return torch.optim.Adam(params, lr=0.01)


def step_lr(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


def one_cycle(optimizer):
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=EPOCHS * 13)


def test_sgd_momentum_with_shuffled_train_and_val_loaders_and_dropout(tmp_path):
    assert_identical(hand_loop(sgd_momentum), trainer_run(tmp_path, sgd_momentum))


def test_adam_with_step_lr_stepped_per_epoch(tmp_path):
    assert_identical(hand_loop(adam, step_lr), trainer_run(tmp_path, adam, step_lr))


def test_one_cycle_lr_stepped_per_batch(tmp_path):
    hand = hand_loop(sgd_momentum, one_cycle, interval="step")
    assert_identical(hand, trainer_run(tmp_path, sgd_momentum, one_cycle, interval="step"))


def test_gradient_clipping_matches_clip_grad_norm(tmp_path):
    hand = hand_loop(sgd_momentum, clip=0.25)
    assert_identical(hand, trainer_run(tmp_path, sgd_momentum, gradient_clip_val=0.25))


def test_accumulate_grad_batches_matches_divided_loss_and_step_every_four(tmp_path):
    # 200 samples / 16 = 13 batches: the last window of each epoch is a partial one (1 batch).
    hand = hand_loop(adam, accumulate=4)
    assert_identical(hand, trainer_run(tmp_path, adam, accumulate_grad_batches=4))


def test_sanity_check_leaves_the_random_state_untouched(tmp_path):
    with_check = trainer_run(tmp_path / "a", adam, num_sanity_val_steps=2)
    without_check = trainer_run(tmp_path / "b", adam, num_sanity_val_steps=0)
    assert_identical(with_check, without_check)


def test_validation_is_not_needed_for_equivalence_of_the_train_losses(tmp_path):
    """Control: dropping validation changes the RNG stream, so the comparison above really tests something."""
    torch.manual_seed(0)
    module = Regressor(adam)
    train, _ = loaders()
    Trainer(max_epochs=EPOCHS, default_root_dir=tmp_path).fit(module, train)
    hand_losses, _ = hand_loop(adam)
    assert module.losses[:13] == hand_losses[:13]
    assert module.losses != hand_losses


# --- a two-optimizer GAN in manual optimization -------------------------------------------------------

LATENT = 4


def generator() -> nn.Module:
    return nn.Sequential(nn.Linear(LATENT, 16), nn.ReLU(), nn.Linear(16, 8))


def discriminator() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(16, 1))


def real_loader() -> DataLoader:
    return DataLoader(dataset(96, seed=3).tensors[0], batch_size=BATCH, shuffle=True)


def gan_hand_loop() -> tuple[list[float], dict]:
    torch.manual_seed(0)
    gen, disc = generator(), discriminator()
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(EPOCHS):
        for real in real_loader():
            fake = gen(torch.randn(real.shape[0], LATENT))
            opt_d.zero_grad()
            d_loss = (F.binary_cross_entropy_with_logits(disc(real), torch.ones(real.shape[0], 1))
                      + F.binary_cross_entropy_with_logits(disc(fake.detach()), torch.zeros(real.shape[0], 1)))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(real.shape[0], 1))
            g_loss.backward()
            opt_g.step()
            losses += [d_loss.item(), g_loss.item()]
    return losses, {**{f"g.{k}": v for k, v in gen.state_dict().items()},
                    **{f"d.{k}": v for k, v in disc.state_dict().items()}}


class GAN(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator()
        self.discriminator = discriminator()
        self.losses: list[float] = []

    def training_step(self, real, batch_idx):
        opt_g, opt_d = self.optimizers()
        fake = self.generator(torch.randn(real.shape[0], LATENT))
        ones, zeros = torch.ones(real.shape[0], 1), torch.zeros(real.shape[0], 1)
        self.toggle_optimizer(opt_d)
        opt_d.zero_grad()
        d_loss = (F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros))
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.toggle_optimizer(opt_g)
        opt_g.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=True)
        self.losses += [d_loss.item(), g_loss.item()]

    def configure_optimizers(self):
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
        return [opt_g, opt_d]


def test_two_optimizer_gan_in_manual_optimization(tmp_path):
    torch.manual_seed(0)
    gan = GAN()
    trainer = Trainer(max_epochs=EPOCHS, default_root_dir=tmp_path)
    trainer.fit(gan, real_loader())
    weights = {**{f"g.{k}": v for k, v in gan.generator.state_dict().items()},
               **{f"d.{k}": v for k, v in gan.discriminator.state_dict().items()}}
    assert_identical(gan_hand_loop(), (gan.losses, weights))
    assert trainer.global_step == 2 * EPOCHS * 6  # Lightning counts every optimizer step
