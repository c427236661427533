"""Train the DDP test task in 2 processes, however they were started.

    python train_ddp.py OUT SCENARIO [--strategy ddp|ddp_spawn]

Run it plainly (rank 0 starts rank 1), under `python -m torch.distributed.run
--nproc_per_node=2`, or with --strategy ddp_spawn. Each rank writes what it ended with to
OUT/<tag>_rank<R>.pt (see ddp_task.DumpAtFitEnd); the test compares the files.

Scenarios:
  main    fit 4 epochs (shuffled, validation, CSV logs, a checkpoint every epoch), validate,
          then resume a fresh module from the epoch-1 checkpoint to epoch 4.
  manual  manual optimization in order; rank 1 alone asks to stop after epoch 1.
  short   fit 2 epochs in order, accumulating 2 batches per step (used with ddp_spawn; the main
          process also dumps its module).
  crash   rank 1 raises in training_step at its 4th batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

import torch  # noqa: E402

import runtime.checkpoint  # noqa: E402
from ddp_task import (  # noqa: E402
    SEED, DumpAtFitEnd, ManualRegressor, Regressor, StopOnRank, train_loader, val_loader,
)
from runtime import Trainer, seed_everything  # noqa: E402
from runtime.callbacks import ModelCheckpoint  # noqa: E402
from runtime.loggers import CSVLogger  # noqa: E402


def trainer(out: Path, strategy: str, tag: str, max_epochs: int, **kwargs) -> Trainer:
    args = {"accelerator": "cpu", "devices": 2, "strategy": strategy, "max_epochs": max_epochs,
            "enable_model_summary": False, "enable_progress_bar": False, "logger": False,
            "enable_checkpointing": False, "default_root_dir": out}
    args.update(kwargs)
    callbacks = [DumpAtFitEnd(str(out), tag), *args.pop("callbacks", [])]
    return Trainer(callbacks=callbacks, **args)


def record_checkpoint_writes(out: Path) -> None:
    """Append '<rank> <file>' to OUT/writes.txt for every checkpoint file written, to show who writes them."""
    real_save = runtime.checkpoint.atomic_save

    def save(obj, path):
        with open(out / "writes.txt", "a") as log:
            log.write(f"{int(torch.distributed.get_rank())} {Path(path).name}\n")
        real_save(obj, path)

    runtime.checkpoint.atomic_save = save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("scenario", choices=["main", "manual", "short", "crash"])
    parser.add_argument("--strategy", default="ddp")
    args = parser.parse_args()
    out, strategy = args.out, args.strategy
    torch.set_num_threads(1)
    seed_everything(SEED)

    if args.scenario == "main":
        record_checkpoint_writes(out)
        model = Regressor()
        fit = trainer(out, strategy, "fit", 4, precision="64-true", logger=CSVLogger(out / "logs"),
                      enable_checkpointing=True, callbacks=[ModelCheckpoint(save_top_k=-1, save_last=True)],
                      enable_progress_bar=True)
        fit.fit(model, train_loader(shuffle=True), val_loader())
        results = fit.validate(model, val_loader(), verbose=False)
        torch.save(results, out / f"validate_rank{fit.global_rank}.pt")
        seed_everything(SEED)
        checkpoint = Path(fit.checkpoint_callback.dirpath) / "epoch=1-step=16.ckpt"
        resumed = trainer(out, strategy, "resumed", 4, precision="64-true")
        resumed.fit(Regressor(), train_loader(shuffle=True), val_loader(), ckpt_path=checkpoint)
    elif args.scenario == "manual":
        trainer(out, strategy, "manual", 4, callbacks=[StopOnRank(rank=1, epoch=1)]).fit(
            ManualRegressor(), train_loader(shuffle=False))
    elif args.scenario == "short":
        model = Regressor()
        fit = trainer(out, strategy, "short", 2, accumulate_grad_batches=2)
        fit.fit(model, train_loader(shuffle=False))
        torch.save({"weights": model.state_dict(), "global_step": fit.global_step,
                    "metrics": {k: float(v) for k, v in fit.callback_metrics.items()}}, out / "main_process.pt")
    else:
        trainer(out, strategy, "crash", 2).fit(Regressor(crash_rank=1), train_loader(shuffle=False))


if __name__ == "__main__":
    main()
