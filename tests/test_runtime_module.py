"""LightningModule and LightningDataModule API: hyperparameters, device transfer, precision, seeding."""

import dataclasses
from collections import namedtuple

import pytest
import torch
from torch.utils.data import DataLoader

from runtime import LightningDataModule, LightningModule, Trainer, seed_everything
from runtime.device_transfer import move_data_to_device
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


class WithArgs(LightningModule):
    def __init__(self, lr: float, hidden: int = 8, *, name: str = "net", **extra):
        super().__init__()
        self.save_hyperparameters()


def test_save_hyperparameters_collects_every_init_argument():
    assert dict(WithArgs(0.1, name="x", dropout=0.5).hparams) == {"lr": 0.1, "hidden": 8, "name": "x",
                                                                   "dropout": 0.5}


def test_save_hyperparameters_with_names_and_ignore():
    class Named(LightningModule):
        def __init__(self, lr, hidden, backbone=None):
            super().__init__()
            self.save_hyperparameters("lr", "hidden")

    class Ignored(LightningModule):
        def __init__(self, lr, backbone):
            super().__init__()
            self.save_hyperparameters(ignore=["backbone"])

    assert dict(Named(0.1, 4).hparams) == {"lr": 0.1, "hidden": 4}
    assert dict(Ignored(0.1, torch.nn.Linear(1, 1)).hparams) == {"lr": 0.1}
    assert Named(0.1, 4).hparams.lr == 0.1


def test_save_hyperparameters_from_a_dict():
    class FromDict(LightningModule):
        def __init__(self, config):
            super().__init__()
            self.save_hyperparameters(config)

    assert dict(FromDict({"lr": 0.2}).hparams) == {"lr": 0.2}


def test_save_hyperparameters_warns_about_modules():
    class Holds(LightningModule):
        def __init__(self, backbone):
            super().__init__()
            self.save_hyperparameters()

    with pytest.warns(UserWarning, match="ignore=\\['backbone'\\]"):
        Holds(torch.nn.Linear(1, 1))


def test_datamodule_hooks_run_in_order_and_feed_the_trainer(tmp_path):
    calls = []

    class Data(LightningDataModule):
        def __init__(self, batch_size):
            super().__init__()
            self.save_hyperparameters()

        def prepare_data(self):
            calls.append("prepare_data")

        def setup(self, stage):
            calls.append(f"setup:{stage}")

        def train_dataloader(self):
            return loader(batch_size=self.hparams.batch_size)

        def val_dataloader(self):
            return loader(seed=1)

        def teardown(self, stage):
            calls.append(f"teardown:{stage}")

    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(TinyRegressor(), datamodule=Data(batch_size=16))
    assert calls == ["prepare_data", "setup:fit", "teardown:fit"]
    assert trainer.num_training_batches == 4 and "val_loss" in trainer.callback_metrics


def test_datamodule_from_datasets(tmp_path):
    datamodule = LightningDataModule.from_datasets(loader().dataset, batch_size=32)
    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(TinyRegressor(), datamodule=datamodule)
    assert trainer.global_step == 2


Pair = namedtuple("Pair", "x y")


@dataclasses.dataclass
class Batch:
    x: torch.Tensor
    meta: str
    y: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(1))


def test_move_data_to_device_keeps_every_container_type():
    moved = move_data_to_device(
        {"pair": Pair(torch.ones(1), [torch.ones(1), (torch.ones(1), "s")]), "dc": Batch(torch.ones(1), "m")},
        torch.device("meta"),
    )
    assert isinstance(moved["pair"], Pair) and moved["pair"].x.device.type == "meta"
    assert moved["pair"].y[1][1] == "s" and moved["pair"].y[1][0].device.type == "meta"
    assert isinstance(moved["dc"], Batch) and moved["dc"].x.device.type == "meta" and moved["dc"].meta == "m"


def test_batch_transfer_hooks_are_honoured(tmp_path):
    seen = []

    class Hooks(TinyRegressor):
        def on_before_batch_transfer(self, batch, dataloader_idx):
            return [batch[0] * 0, batch[1]]

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            seen.append(device.type)
            return batch

        def on_after_batch_transfer(self, batch, dataloader_idx):
            assert torch.all(batch[0] == 0)
            return batch

    Trainer(max_epochs=1, limit_train_batches=2, **quiet_trainer_args(tmp_path)).fit(Hooks(), loader())
    assert seen == ["cpu", "cpu"]


def test_precision_64_true_trains_in_double(tmp_path):
    dtypes = []

    class Double(TinyRegressor):
        def training_step(self, batch, batch_idx):
            dtypes.append((batch[0].dtype, self.layer.weight.dtype))
            return super().training_step(batch, batch_idx)

    Trainer(max_epochs=1, limit_train_batches=1, precision="64-true", **quiet_trainer_args(tmp_path)).fit(
        Double(), loader())
    assert dtypes == [(torch.float64, torch.float64)]


def test_bf16_mixed_on_cpu_autocasts_the_forward(tmp_path):
    dtypes = []

    class Mixed(TinyRegressor):
        def training_step(self, batch, batch_idx):
            dtypes.append(self(batch[0]).dtype)
            return super().training_step(batch, batch_idx)

    Trainer(max_epochs=1, limit_train_batches=1, precision="bf16-mixed", accelerator="cpu",
            **quiet_trainer_args(tmp_path)).fit(Mixed(), loader())
    assert dtypes == [torch.bfloat16]


@pytest.mark.parametrize(("legacy", "name"), [(16, "16-mixed"), ("bf16", "bf16-mixed"), (32, "32-true")])
def test_legacy_precision_spellings(legacy, name):
    from runtime.precision import normalise_precision

    assert normalise_precision(legacy) == name


def test_seed_everything_seeds_torch_python_and_numpy():
    import random

    import numpy

    seed_everything(7)
    first = (torch.rand(1).item(), random.random(), numpy.random.rand())
    seed_everything(7)
    assert (torch.rand(1).item(), random.random(), numpy.random.rand()) == first


def test_the_runtime_draws_no_random_numbers_outside_user_code(tmp_path):
    """With no dropout, no shuffling and no validation, fit must leave the global RNG exactly where it was."""
    torch.manual_seed(0)
    module = TinyRegressor()
    before = torch.get_rng_state()
    Trainer(max_epochs=2, **quiet_trainer_args(tmp_path)).fit(module, DataLoader(loader().dataset, batch_size=8))
    after = torch.get_rng_state()
    # Each DataLoader iterator draws one seed, as it does in a hand loop: replay that to compare.
    torch.set_rng_state(before)
    for _ in range(2):
        iter(DataLoader(loader().dataset, batch_size=8))
    assert torch.equal(after, torch.get_rng_state())


def test_manual_optimization_clip_gradients(tmp_path):
    norms = []

    class Manual(TinyRegressor):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            opt.zero_grad()
            loss = super().training_step(batch, batch_idx) * 1000
            self.manual_backward(loss)
            self.clip_gradients(opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
            norms.append(torch.cat([p.grad.flatten() for p in self.parameters()]).norm().item())
            opt.step()

    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(Manual(), loader())
    assert max(norms) <= 0.5 + 1e-6 and trainer.global_step == 8


@pytest.mark.cuda
def test_cuda_training_moves_model_and_nested_batches(tmp_path):
    devices = []

    class OnGpu(TinyRegressor):
        def training_step(self, batch, batch_idx):
            devices.append((batch[0].device.type, self.device.type))
            return super().training_step(batch, batch_idx)

    Trainer(max_epochs=1, accelerator="cuda", devices=1, **quiet_trainer_args(tmp_path)).fit(OnGpu(), loader())
    assert set(devices) == {("cuda", "cuda")}


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_cuda_mixed_precision_trains_and_scales(tmp_path, precision):
    dtypes = []

    class Mixed(TinyRegressor):
        def training_step(self, batch, batch_idx):
            dtypes.append(self(batch[0]).dtype)
            return super().training_step(batch, batch_idx)

        def on_before_optimizer_step(self, optimizer):
            # Gradients are unscaled before hooks see them (and before clipping).
            assert all(torch.isfinite(p.grad).all() for p in self.parameters())

    trainer = Trainer(max_epochs=2, accelerator="cuda", precision=precision, gradient_clip_val=1.0,
                      **quiet_trainer_args(tmp_path))
    trainer.fit(Mixed(), loader())
    expected = torch.float16 if precision == "16-mixed" else torch.bfloat16
    assert set(dtypes) == {expected}
    assert (trainer.precision_plugin.scaler is not None) == (precision == "16-mixed")
    assert torch.isfinite(trainer.callback_metrics["train_loss"]).item()


class FromConfig(LightningModule):
    def __init__(self, config):
        super().__init__()
        self.save_hyperparameters(config)
        self.layer = torch.nn.Linear(4, 1)


def test_hyperparameters_saved_from_a_dict_argument_rebuild_the_module(tmp_path):
    trainer = Trainer(**quiet_trainer_args(tmp_path))
    module = FromConfig({"lr": 0.3})
    trainer.lightning_module = module
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    restored = FromConfig.load_from_checkpoint(tmp_path / "m.ckpt")
    assert dict(restored.hparams) == {"lr": 0.3}
    assert torch.equal(restored.layer.weight, module.layer.weight)
