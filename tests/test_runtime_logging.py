"""self.log / self.log_dict: defaults per hook, suffixes, weighted epoch means, and where values go."""

import csv

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from runtime import MisconfigurationException, Trainer
from runtime.loggers import CSVLogger
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


def test_training_step_logs_per_step_by_default(tmp_path):
    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(TinyRegressor(), loader())
    assert set(trainer.callback_metrics) == {"train_loss"}
    assert trainer.progress_bar_metrics.keys() == {"train_loss"}


def test_validation_step_logs_the_epoch_mean(tmp_path):
    module = TinyRegressor()
    trainer = Trainer(max_epochs=1, num_sanity_val_steps=0, **quiet_trainer_args(tmp_path))
    trainer.fit(module, loader(), loader(seed=1))
    module.eval()
    x, y = loader(seed=1).dataset.tensors
    with torch.no_grad():
        expected = F.mse_loss(module(x), y)
    assert trainer.callback_metrics["val_loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_on_step_and_on_epoch_together_add_suffixes(tmp_path):
    class Both(TinyRegressor):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.log("loss", loss, on_step=True, on_epoch=True, prog_bar=True)
            return loss

    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(Both(), loader())
    assert {"loss", "loss_step", "loss_epoch"} <= set(trainer.callback_metrics)
    assert {"loss_step", "loss_epoch"} <= set(trainer.progress_bar_metrics)
    assert trainer.callback_metrics["loss"] is trainer.callback_metrics["loss_epoch"]


def test_epoch_mean_is_weighted_by_batch_size(tmp_path):
    """correct / len(dataset) computed per batch and averaged with batch_size weights gives the same value."""
    seen = {}

    class Accuracy(TinyRegressor):
        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("acc", (y[:, 0] > 0).float().mean(), batch_size=len(x))

    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
    y = torch.randn(10, 1, generator=torch.Generator().manual_seed(4))
    val = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4, 2
    trainer = Trainer(max_epochs=1, num_sanity_val_steps=0, **quiet_trainer_args(tmp_path))
    trainer.fit(Accuracy(), loader(), val)
    seen["acc"] = trainer.callback_metrics["acc"].item()
    assert seen["acc"] == pytest.approx((y[:, 0] > 0).float().sum().item() / 10, abs=1e-12)


def test_batch_size_is_inferred_from_the_batch_when_not_given(tmp_path):
    class Unweighted(TinyRegressor):
        def validation_step(self, batch, batch_idx):
            self.log("first", batch[0][0, 0])

    x = torch.arange(10.0).repeat(4, 1).T.contiguous()
    val = DataLoader(TensorDataset(x, x[:, :1]), batch_size=4)  # first values 0, 4, 8 with sizes 4, 4, 2
    trainer = Trainer(max_epochs=1, num_sanity_val_steps=0, **quiet_trainer_args(tmp_path))
    trainer.fit(Unweighted(), loader(), val)
    assert trainer.callback_metrics["first"].item() == pytest.approx((0 * 4 + 4 * 4 + 8 * 2) / 10)


@pytest.mark.parametrize(("reduce_fx", "expected"), [("sum", 3.0), ("max", 2.0), ("min", 0.0), (torch.max, 2.0)])
def test_reduce_fx(tmp_path, reduce_fx, expected):
    class Reduced(TinyRegressor):
        def validation_step(self, batch, batch_idx):
            self.log("idx", float(batch_idx), reduce_fx=reduce_fx)

    trainer = Trainer(max_epochs=1, num_sanity_val_steps=0, **quiet_trainer_args(tmp_path))
    trainer.fit(Reduced(), loader(), loader(n=24))
    assert trainer.callback_metrics["idx"].item() == expected


def test_log_dict_logs_every_key(tmp_path):
    class Many(TinyRegressor):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.log_dict({"a": loss * 2, "b": 1.0})
            return loss

    trainer = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    trainer.fit(Many(), loader())
    assert {"a", "b"} <= set(trainer.callback_metrics)


def test_logging_a_non_scalar_tensor_says_to_reduce_it(tmp_path):
    class Vector(TinyRegressor):
        def training_step(self, batch, batch_idx):
            self.log("vec", batch[0])
            return super().training_step(batch, batch_idx)

    with pytest.raises(MisconfigurationException, match=r"scalar.*mean\(\)"):
        Trainer(max_epochs=1, **quiet_trainer_args(tmp_path)).fit(Vector(), loader())


def test_logging_in_predict_step_is_refused(tmp_path):
    class Predicts(TinyRegressor):
        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            self.log("nope", 1.0)

    with pytest.raises(MisconfigurationException, match="predict_step"):
        Trainer(**quiet_trainer_args(tmp_path)).predict(Predicts(), loader())


def test_csv_logger_gets_step_rows_every_n_steps_and_epoch_rows(tmp_path):
    trainer = Trainer(max_epochs=2, log_every_n_steps=4, default_root_dir=tmp_path, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(TinyRegressor(), loader(), loader(seed=1))
    assert trainer.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    with open(f"{trainer.log_dir}/metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    train_steps = [int(r["step"]) for r in rows if r.get("train_loss")]
    val_steps = [int(r["step"]) for r in rows if r.get("val_loss")]
    assert train_steps == [3, 7, 11, 15]
    assert val_steps == [7, 15]
    assert all(r["epoch"] != "" for r in rows)


def test_hyperparameters_reach_the_logger(tmp_path):
    trainer = Trainer(max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(TinyRegressor(lr=0.25), loader())
    assert "lr: 0.25" in (tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text()


def test_tensorboard_logger_receives_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from runtime.loggers import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path)
    trainer = Trainer(max_epochs=2, logger=logger, log_every_n_steps=2, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(TinyRegressor(), loader())
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert len(events.Scalars("train_loss")) == 8


def test_logger_list_and_version_dirs(tmp_path):
    loggers = [CSVLogger(tmp_path, name="a"), CSVLogger(tmp_path, name="b")]
    trainer = Trainer(max_epochs=1, logger=loggers, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, log_every_n_steps=1)
    trainer.fit(TinyRegressor(), loader())
    assert trainer.logger is loggers[0]
    assert (tmp_path / "a" / "version_0" / "metrics.csv").exists()
    assert (tmp_path / "b" / "version_0" / "metrics.csv").exists()
