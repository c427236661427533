"""Every misuse gets a message that names the fix."""

import pytest
import torch
from torch import nn

from runtime import LightningModule, MisconfigurationException, Trainer
from tests.runtime_models import TinyRegressor, loader, quiet_trainer_args


def test_missing_training_step(tmp_path):
    class NoStep(LightningModule):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with pytest.raises(MisconfigurationException, match=r"no training_step\(\).*def training_step"):
        Trainer(**quiet_trainer_args(tmp_path)).fit(NoStep(), loader())


def test_missing_configure_optimizers(tmp_path):
    class NoOptim(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

    with pytest.raises(MisconfigurationException, match=r"configure_optimizers\(\).*torch.optim.Adam"):
        Trainer(**quiet_trainer_args(tmp_path)).fit(NoOptim(), loader())


def test_fit_without_data_lists_the_ways_to_give_it(tmp_path):
    with pytest.raises(MisconfigurationException, match="train_dataloaders=.*datamodule"):
        Trainer(**quiet_trainer_args(tmp_path)).fit(TinyRegressor())


def test_fit_with_a_plain_nn_module_says_to_wrap_it(tmp_path):
    with pytest.raises(MisconfigurationException, match="expects a LightningModule"):
        Trainer(**quiet_trainer_args(tmp_path)).fit(nn.Linear(4, 1), loader())


def test_test_without_test_step(tmp_path):
    class NoTest(TinyRegressor):
        test_step = LightningModule.test_step

    with pytest.raises(MisconfigurationException, match=r"test_step\(self, batch, batch_idx\)"):
        Trainer(**quiet_trainer_args(tmp_path)).test(NoTest(), loader())


def test_training_step_returning_a_dict_without_loss(tmp_path):
    class BadDict(TinyRegressor):
        def training_step(self, batch, batch_idx):
            return {"value": super().training_step(batch, batch_idx)}

    with pytest.raises(MisconfigurationException, match="'loss' key"):
        Trainer(**quiet_trainer_args(tmp_path)).fit(BadDict(), loader())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_a_gpu_names_the_alternative():
    with pytest.raises(MisconfigurationException, match="no CUDA device is available.*accelerator='cpu'"):
        Trainer(accelerator="cuda")


def test_unknown_accelerator():
    with pytest.raises(MisconfigurationException, match="'cpu', 'cuda'"):
        Trainer(accelerator="tpu")


def test_16_mixed_on_cpu_suggests_bf16():
    with pytest.raises(MisconfigurationException, match="on CPU use precision='bf16-mixed'"):
        Trainer(accelerator="cpu", precision="16-mixed")


def test_unknown_precision():
    with pytest.raises(MisconfigurationException, match="'32-true'"):
        Trainer(precision="8-bit")


def test_a_single_device_strategy_with_several_devices_points_to_ddp():
    with pytest.raises(MisconfigurationException, match="strategy='ddp'.*or devices=1"):
        Trainer(accelerator="cpu", devices=2, strategy="single_device")


def test_unknown_trainer_argument_suggests_the_close_name():
    with pytest.raises(TypeError, match="Did you mean `max_epochs`"):
        Trainer(max_epoch=3)


def test_bad_max_time_format():
    with pytest.raises(MisconfigurationException, match="DD:HH:MM:SS"):
        Trainer(max_time="1 hour")


def test_val_check_interval_larger_than_the_epoch(tmp_path):
    with pytest.raises(MisconfigurationException, match="check_val_every_n_epoch=None"):
        Trainer(val_check_interval=100, **quiet_trainer_args(tmp_path)).fit(TinyRegressor(), loader(), loader())


def test_accumulate_grad_batches_must_be_a_positive_int():
    with pytest.raises(MisconfigurationException, match="GradientAccumulationScheduler"):
        Trainer(accumulate_grad_batches=0)


def test_self_log_outside_a_trainer_warns_and_ignores():
    with pytest.warns(UserWarning, match="outside a Trainer"):
        TinyRegressor().log("x", 1.0)
