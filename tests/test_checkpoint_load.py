"""Loading checkpoints: load_from_checkpoint, ckpt_path for every stage, and what fit refuses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from runtime import LightningDataModule, LightningModule, Trainer
from runtime.callbacks import Callback, ModelCheckpoint
from runtime.exceptions import MisconfigurationException
from runtime_models import TinyRegressor, loader

SCRIPT = (0.5, 0.3, 0.4, 0.1, 0.2)
# Resumed runs here use another directory than the run they resume, which Lightning (and we) warn about.
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed")


class ScriptedValLoss(TinyRegressor):
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(SCRIPT[min(self.current_epoch, len(SCRIPT) - 1)]))


def quiet(tmp_path, **args):
    return Trainer(**{"default_root_dir": tmp_path, "logger": False, "enable_progress_bar": False,
                      "enable_model_summary": False, "num_sanity_val_steps": 0, **args})


def trained(tmp_path, module=None, max_epochs=1, **args):
    module = module or TinyRegressor(lr=0.3)
    trainer = quiet(tmp_path, max_epochs=max_epochs, **args)
    trainer.fit(module, loader(), loader(16))
    return trainer, module


def same_weights(module: nn.Module, state_dict: dict) -> bool:
    return all(torch.equal(tensor, state_dict[name]) for name, tensor in module.state_dict().items())


# --- load_from_checkpoint ----------------------------------------------------------------------------------
def test_load_from_checkpoint_rebuilds_from_the_saved_hyperparameters(tmp_path):
    trainer, module = trained(tmp_path)
    loaded = TinyRegressor.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert loaded.hparams.lr == 0.3 and same_weights(loaded, module.state_dict())


def test_keyword_arguments_override_saved_hyperparameters(tmp_path):
    trainer, _ = trained(tmp_path)
    assert TinyRegressor.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, lr=0.01).hparams.lr == 0.01


def test_an_ignored_argument_is_passed_again_on_load(tmp_path):
    class Wrapper(LightningModule):
        def __init__(self, model: nn.Module, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["model"])
            self.model = model

        def training_step(self, batch, batch_idx):
            return nn.functional.mse_loss(self.model(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    trainer = quiet(tmp_path, max_epochs=1)
    trainer.fit(Wrapper(nn.Linear(4, 1), lr=0.2), loader())
    loaded = Wrapper.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, model=nn.Linear(4, 1))
    assert loaded.hparams.lr == 0.2


def test_strict_false_loads_into_a_changed_module(tmp_path):
    class Bigger(TinyRegressor):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__(lr)
            self.extra = nn.Linear(1, 1)

    trainer, _ = trained(tmp_path)
    path = trainer.checkpoint_callback.best_model_path
    with pytest.raises(RuntimeError, match="extra"):
        Bigger.load_from_checkpoint(path)
    with pytest.warns(UserWarning, match="strict=False"):
        Bigger.load_from_checkpoint(path, strict=False)


def test_map_location_places_the_weights(tmp_path):
    trainer, _ = trained(tmp_path)
    loaded = TinyRegressor.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, map_location="cpu")
    assert loaded.device.type == "cpu"


class Data(LightningDataModule):
    def __init__(self, batch_size: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.restored = None

    def train_dataloader(self):
        return loader(batch_size=self.hparams.batch_size)

    def state_dict(self):
        return {"seen": 3}

    def load_state_dict(self, state_dict):
        self.restored = state_dict


def test_datamodule_load_from_checkpoint_rebuilds_it_with_its_state(tmp_path):
    trainer = quiet(tmp_path, max_epochs=1)
    trainer.fit(TinyRegressor(), datamodule=Data(batch_size=16))
    data = Data.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert data.hparams.batch_size == 16 and data.restored == {"seen": 3}


def test_fit_from_a_checkpoint_restores_the_datamodule_state(tmp_path):
    trainer = quiet(tmp_path, max_epochs=1)
    trainer.fit(TinyRegressor(), datamodule=Data())
    data = Data()
    quiet(tmp_path / "again", max_epochs=2).fit(TinyRegressor(), datamodule=data,
                                                ckpt_path=trainer.checkpoint_callback.best_model_path)
    assert data.restored == {"seen": 3}


# --- ckpt_path for validate and test -----------------------------------------------------------------------
@pytest.fixture
def scripted_run(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "c", monitor="val_loss", save_last=True)
    trainer, module = trained(tmp_path, ScriptedValLoss(), max_epochs=5, callbacks=[callback])
    return trainer, module, callback


@pytest.mark.parametrize(("stage", "ckpt_path", "expected"), [
    ("test", "best", "epoch=3-step=32.ckpt"),
    ("test", "last", "last.ckpt"),
    ("validate", "best", "epoch=3-step=32.ckpt"),
])
def test_evaluation_loads_the_requested_checkpoint(scripted_run, tmp_path, stage, ckpt_path, expected):
    trainer, module, _ = scripted_run
    getattr(trainer, stage)(module, loader(16), ckpt_path=ckpt_path, verbose=False)
    assert trainer.ckpt_path == str(tmp_path / "c" / expected)
    assert same_weights(module, torch.load(tmp_path / "c" / expected, weights_only=True)["state_dict"])


def test_evaluation_loads_a_checkpoint_file(scripted_run, tmp_path):
    trainer, module, _ = scripted_run
    path = tmp_path / "c" / "epoch=3-step=32.ckpt"
    trainer.validate(module, loader(16), ckpt_path=path, verbose=False)
    assert same_weights(module, torch.load(path, weights_only=True)["state_dict"])


def test_best_without_a_checkpoint_callback_names_the_fix(tmp_path):
    trainer, module = trained(tmp_path, enable_checkpointing=False)
    with pytest.raises(MisconfigurationException, match="pass a file path"):
        trainer.test(module, loader(16), ckpt_path="best")


def test_last_with_no_checkpoint_saved_warns_and_keeps_the_current_weights(tmp_path):
    trainer = quiet(tmp_path, max_epochs=1)
    module = TinyRegressor()
    with pytest.warns(UserWarning, match="no last checkpoint"):
        trainer.fit(module, loader(), ckpt_path="last")
    assert trainer.ckpt_path is None and trainer.global_step == 8


# --- what fit refuses or warns about ------------------------------------------------------------------------
def test_resuming_past_max_epochs_names_the_fix(tmp_path):
    trainer, _ = trained(tmp_path, max_epochs=3)
    with pytest.raises(MisconfigurationException, match="raise max_epochs"):
        quiet(tmp_path / "again", max_epochs=1).fit(TinyRegressor(), loader(),
                                                    ckpt_path=trainer.checkpoint_callback.best_model_path)


def test_resuming_without_a_callback_whose_state_was_saved_warns(tmp_path):
    class Stateful(Callback):
        def state_dict(self):
            return {"x": 1}

    trainer, _ = trained(tmp_path, callbacks=[Stateful()])
    with pytest.warns(UserWarning, match=r"add the following callbacks: \[.*Stateful'\]"):
        quiet(tmp_path / "again", max_epochs=2).fit(TinyRegressor(), loader(),
                                                    ckpt_path=trainer.checkpoint_callback.best_model_path)


def test_a_callback_gets_its_saved_state_back_on_resume(tmp_path):
    class Counter(Callback):
        def __init__(self):
            self.count = 0

        def on_train_epoch_end(self, trainer, pl_module):
            self.count += 1

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state_dict):
            self.count = state_dict["count"]

    trainer, _ = trained(tmp_path, max_epochs=2, callbacks=[Counter()])
    resumed = Counter()
    quiet(tmp_path / "again", max_epochs=3, callbacks=[resumed]).fit(
        TinyRegressor(), loader(), ckpt_path=trainer.checkpoint_callback.best_model_path)
    assert resumed.count == 3


def test_a_file_that_needs_pickle_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(MisconfigurationException, match="weights_only=True"):
        TinyRegressor.load_from_checkpoint(tmp_path / "evil.ckpt")
