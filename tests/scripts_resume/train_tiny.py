"""Train the tiny resume task in its own process, and stop it the hard way when asked.

    python train_tiny.py CKPT_DIR [--every-n-train-steps N] [--kill-at-step S]
                                  [--kill-during-save K] [--interrupt-at-step S]

--kill-at-step S        SIGKILL this process after optimizer step S (no hook or handler runs).
--kill-during-save K    SIGKILL this process halfway through writing its K-th checkpoint file.
--interrupt-at-step S   send this process SIGINT (Ctrl-C) after optimizer step S.

Checkpoints go to CKPT_DIR as last.ckpt only (save_top_k=0, save_last=True).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

import torch  # noqa: E402

from runtime.callbacks import Callback, ModelCheckpoint  # noqa: E402
from tiny_task import DropoutRegressor, fit, make_trainer  # noqa: E402


class SignalAtStep(Callback):
    def __init__(self, step: int, signum: int) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def die_while_writing(nth_file: int) -> None:
    """Make the nth torch.save write half its bytes, reach the disk, and then kill the process."""
    real_save = torch.save
    calls = {"count": 0}

    def save(obj, handle, *args, **kwargs):
        calls["count"] += 1
        if calls["count"] < nth_file:
            return real_save(obj, handle, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt_dir")
    parser.add_argument("--every-n-train-steps", type=int, default=3)
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--kill-during-save", type=int)
    parser.add_argument("--interrupt-at-step", type=int)
    args = parser.parse_args()

    callbacks: list[Callback] = [ModelCheckpoint(dirpath=args.ckpt_dir, save_top_k=0, save_last=True,
                                                 every_n_train_steps=args.every_n_train_steps)]
    if args.kill_at_step is not None:
        callbacks.append(SignalAtStep(args.kill_at_step, signal.SIGKILL))
    if args.interrupt_at_step is not None:
        callbacks.append(SignalAtStep(args.interrupt_at_step, signal.SIGINT))
    if args.kill_during_save is not None:
        die_while_writing(args.kill_during_save)

    torch.manual_seed(0)
    fit(DropoutRegressor(), make_trainer(Path(args.ckpt_dir).parent, callbacks=callbacks))


if __name__ == "__main__":
    main()
