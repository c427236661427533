"""Faults in a real process: SIGKILL mid-run, SIGKILL mid-write, and Ctrl-C.

The child (tests/scripts_resume/train_tiny.py) trains with last.ckpt every 3 steps; the
resume runs here, in a fresh module and Trainer after reseeding, and must end with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime.callbacks import ModelCheckpoint
from scripts_resume.tiny_task import DropoutRegressor, fit, make_trainer, straight_run, weights

SCRIPT = Path(__file__).parent / "scripts_resume" / "train_tiny.py"


@pytest.fixture(scope="module")
def straight_weights(tmp_path_factory):
    return weights(straight_run(tmp_path_factory.mktemp("straight")))


def run_child(ckpt_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(ckpt_dir), *args], capture_output=True, text=True,
                          timeout=120, cwd=ckpt_dir.parent)


def saved_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


def resume_weights(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(4242)
    module = DropoutRegressor()
    trainer = make_trainer(ckpt_dir.parent, callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0,
                                                                       save_last=True, every_n_train_steps=3)])
    with pytest.warns(UserWarning, match="not empty"):
        fit(module, trainer, ckpt_path="last")
    assert trainer.global_step == 32
    return weights(module)


def assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[name], expected[name]) for name in expected)


def test_a_run_killed_with_sigkill_resumes_from_last_ckpt_to_the_uninterrupted_weights(tmp_path, straight_weights):
    ckpt_dir = tmp_path / "checkpoints"

    child = run_child(ckpt_dir, "--kill-at-step", "14")

    assert child.returncode == -signal.SIGKILL, child.stderr
    assert saved_step(ckpt_dir / "last.ckpt") == 12
    assert_same(resume_weights(ckpt_dir), straight_weights)


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path, straight_weights):
    ckpt_dir = tmp_path / "checkpoints"

    child = run_child(ckpt_dir, "--kill-during-save", "3")

    assert child.returncode == -signal.SIGKILL, child.stderr
    assert [p.name for p in ckpt_dir.glob(".last.ckpt.*.tmp")], "the third write was not cut off midway"
    assert saved_step(ckpt_dir / "last.ckpt") == 6
    assert_same(resume_weights(ckpt_dir), straight_weights)


def test_ctrl_c_exits_130_with_a_one_line_resume_hint_and_no_partial_files(tmp_path, straight_weights):
    ckpt_dir = tmp_path / "checkpoints"

    child = run_child(ckpt_dir, "--interrupt-at-step", "10")

    assert child.returncode == 130
    last = ckpt_dir / "last.ckpt"
    assert child.stderr.strip().splitlines()[-1] == (
        f'Interrupted at epoch 1, step 10. Resume with trainer.fit(model, ckpt_path="{last}")'
    )
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]
    assert saved_step(last) == 9
    assert_same(resume_weights(ckpt_dir), straight_weights)
