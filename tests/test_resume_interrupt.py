"""Ctrl-C (KeyboardInterrupt): callbacks hear about it, files stay whole, one line says how to resume.

The trainer exits with SystemExit(130), the shell's code for SIGINT, so a script or a job
scheduler can tell an interrupt from a crash (Lightning 2.x exits with 1).
"""

from __future__ import annotations

import os

import pytest
import torch

from runtime import Trainer
from runtime.callbacks import Callback, ModelCheckpoint
from runtime_models import TinyRegressor, loader


class InterruptAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step
        self.exceptions: list[BaseException] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt

    def on_exception(self, trainer, pl_module, exception):
        self.exceptions.append(exception)


def trainer_with(tmp_path, callbacks, **args):
    return Trainer(max_epochs=3, callbacks=callbacks, default_root_dir=tmp_path, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, **args)


def test_fit_exits_130_after_telling_the_callbacks(tmp_path):
    interrupt = InterruptAtStep(5)
    with pytest.raises(SystemExit) as exit_info:
        trainer_with(tmp_path, [interrupt]).fit(TinyRegressor(), loader())
    assert exit_info.value.code == 130
    assert [type(e) for e in interrupt.exceptions] == [KeyboardInterrupt]


def test_the_message_names_the_position_and_the_checkpoint_to_resume_from(tmp_path, capsys):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "c", every_n_train_steps=4, save_top_k=0, save_last=True)
    with pytest.raises(SystemExit):
        trainer_with(tmp_path, [InterruptAtStep(10), checkpoint]).fit(TinyRegressor(), loader())
    last = tmp_path / "c" / "last.ckpt"
    assert capsys.readouterr().err.strip() == (
        f'Interrupted at epoch 1, step 10. Resume with trainer.fit(model, ckpt_path="{last}")'
    )
    assert os.listdir(tmp_path / "c") == ["last.ckpt"]
    assert torch.load(last, weights_only=True)["global_step"] == 8


def test_without_a_checkpoint_the_message_says_how_to_get_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        trainer_with(tmp_path, [InterruptAtStep(3)], enable_checkpointing=False).fit(TinyRegressor(), loader())
    assert "No checkpoint was saved" in capsys.readouterr().err


def test_an_interrupted_test_run_says_so(tmp_path, capsys):
    class InterruptsTest(TinyRegressor):
        def test_step(self, batch, batch_idx):
            raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        trainer_with(tmp_path, []).test(InterruptsTest(), loader(16), verbose=False)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "Interrupted during trainer.test()."
