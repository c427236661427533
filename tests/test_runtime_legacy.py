"""Lightning 1.x API from the seed articles still runs, with a warning that names the 2.x spelling."""

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import TQDMProgressBar
from runtime.legacy import LegacyAPIWarning
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


def test_gpus_zero_means_cpu():
    with pytest.warns(LegacyAPIWarning, match="accelerator='cpu'"):
        trainer = Trainer(gpus=0)
    assert trainer.root_device == torch.device("cpu")


@pytest.mark.cuda
def test_gpus_one_means_one_cuda_device():
    with pytest.warns(LegacyAPIWarning, match="accelerator='gpu', devices=1"):
        trainer = Trainer(gpus=1)
    assert trainer.root_device.type == "cuda"


def test_validation_epoch_end_receives_the_step_outputs(tmp_path):
    received = []

    class Old(TinyRegressor):
        def validation_step(self, batch, batch_idx):
            return batch_idx

        def validation_epoch_end(self, outputs):
            received.append(list(outputs))

    with pytest.warns(LegacyAPIWarning, match="on_validation_epoch_end"):
        Trainer(max_epochs=1, num_sanity_val_steps=0, **quiet_trainer_args(tmp_path)).fit(
            Old(), loader(), loader(n=24))
    assert received == [[0, 1, 2]]


def test_training_epoch_end_receives_the_step_outputs(tmp_path):
    received = []

    class Old(TinyRegressor):
        def training_epoch_end(self, outputs):
            received.append(len(outputs))

    with pytest.warns(LegacyAPIWarning, match="on_train_epoch_end"):
        Trainer(max_epochs=2, **quiet_trainer_args(tmp_path)).fit(Old(), loader())
    assert received == [8, 8]


def test_test_epoch_end_receives_the_step_outputs(tmp_path):
    received = []

    class Old(TinyRegressor):
        def test_step(self, batch, batch_idx):
            return {"n": len(batch[0])}

        def test_epoch_end(self, outputs):
            received.append(sum(o["n"] for o in outputs))

    with pytest.warns(LegacyAPIWarning, match="on_test_epoch_end"):
        Trainer(**quiet_trainer_args(tmp_path)).test(Old(), loader())
    assert received == [64]


def test_test_dataloaders_keyword(tmp_path):
    with pytest.warns(LegacyAPIWarning, match=r"trainer.test\(dataloaders=...\)"):
        results = Trainer(**quiet_trainer_args(tmp_path)).test(TinyRegressor(), test_dataloaders=loader())
    assert "test_loss" in results[0]


def test_progress_bar_refresh_rate_configures_the_bar():
    with pytest.warns(LegacyAPIWarning, match="TQDMProgressBar"):
        trainer = Trainer(progress_bar_refresh_rate=5)
    assert isinstance(trainer.progress_bar_callback, TQDMProgressBar)
    assert trainer.progress_bar_callback.refresh_rate == 5


def test_progress_bar_refresh_rate_zero_disables_the_bar():
    with pytest.warns(LegacyAPIWarning):
        assert Trainer(progress_bar_refresh_rate=0).progress_bar_callback is None


def test_resume_from_checkpoint_resumes_fit(tmp_path):
    first = Trainer(max_epochs=1, **quiet_trainer_args(tmp_path))
    first.fit(TinyRegressor(), loader())
    first.save_checkpoint(tmp_path / "one_epoch.ckpt")
    with pytest.warns(LegacyAPIWarning, match="ckpt_path"):
        second = Trainer(max_epochs=2, resume_from_checkpoint=str(tmp_path / "one_epoch.ckpt"),
                         **quiet_trainer_args(tmp_path))
    second.fit(TinyRegressor(), loader())
    assert second.global_step == 16 and second.current_epoch == 2
