"""Load runtime-written checkpoints in real `lightning.pytorch` and report what happens.

    python tests/data/check_runtime_ckpt_in_lightning.py [CKPT ...]

With no paths, first trains tests/data/interop_model.py with the runtime (2 epochs of 8
steps) and checks its last.ckpt (end of epoch 1) and a mid-epoch checkpoint (step 12). Each
checkpoint must: open with torch.load(weights_only=True); rebuild through Lightning's
`load_from_checkpoint` with identical weights; resume with Lightning's `fit(ckpt_path=...)`
to 4 epochs (32 steps, the StepLR learning rate halved 4 times); and pass Lightning's
`validate(ckpt_path=...)`. Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import inspect
import logging
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import torch  # noqa: E402

from interop_model import BATCHES_PER_EPOCH, EPOCHS, GAMMA, LR, build  # noqa: E402

RESUMED_EPOCHS = 4


def runtime_checkpoints(work: Path) -> list[Path]:
    import runtime
    from runtime.callbacks import ModelCheckpoint

    Regressor, Data = build(runtime)
    runtime.seed_everything(0)
    epoch_end = ModelCheckpoint(dirpath=work / "epochs", save_last=True)
    mid_epoch = ModelCheckpoint(dirpath=work / "steps", every_n_train_steps=12, save_top_k=-1)
    trainer = runtime.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False, default_root_dir=work,
                              enable_progress_bar=False, callbacks=[epoch_end, mid_epoch])
    trainer.fit(Regressor(), datamodule=Data())
    return [Path(epoch_end.last_model_path), work / "steps" / "epoch=1-step=12.ckpt"]


def weights_only_kwargs(fn) -> dict:
    return {"weights_only": True} if "weights_only" in inspect.signature(fn).parameters else {}


def check(path: Path, work: Path) -> list[tuple[str, bool, str]]:
    import lightning.pytorch as pl

    Regressor, Data = build(pl)
    results = []

    def record(name: str, fn) -> None:
        try:
            detail = fn()
            results.append((name, True, detail or ""))
        except Exception as err:  # report every failure, keep checking
            results.append((name, False, f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"))

    saved = {}

    def opens_weights_only() -> str:
        saved.update(torch.load(path, weights_only=True))
        return f"epoch={saved['epoch']} global_step={saved['global_step']}"

    def load_from_checkpoint() -> str:
        model = Regressor.load_from_checkpoint(path, **weights_only_kwargs(Regressor.load_from_checkpoint))
        same = all(torch.equal(t, saved["state_dict"][k]) for k, t in model.state_dict().items())
        assert same, "weights differ from the file"
        return f"hparams={dict(model.hparams)}"

    def fit_resumes() -> str:
        trainer = pl.Trainer(max_epochs=RESUMED_EPOCHS, accelerator="cpu", logger=False,
                             default_root_dir=work / "fit", enable_progress_bar=False, enable_model_summary=False)
        model = Regressor()
        trainer.fit(model, datamodule=Data(), ckpt_path=str(path), **weights_only_kwargs(trainer.fit))
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        expected_steps = RESUMED_EPOCHS * BATCHES_PER_EPOCH
        detail = f"current_epoch={trainer.current_epoch} global_step={trainer.global_step} lr={lr:g}"
        assert trainer.current_epoch == RESUMED_EPOCHS, detail
        assert trainer.global_step == expected_steps, f"{detail}; expected global_step={expected_steps}"
        assert abs(lr - LR * GAMMA ** RESUMED_EPOCHS) < 1e-12, f"{detail}; expected lr={LR * GAMMA ** 4:g}"
        return detail

    def validate_loads() -> str:
        trainer = pl.Trainer(accelerator="cpu", logger=False, default_root_dir=work / "validate",
                             enable_progress_bar=False, enable_model_summary=False)
        metrics = trainer.validate(Regressor(), datamodule=Data(), ckpt_path=str(path), verbose=False,
                                   **weights_only_kwargs(trainer.validate))
        return f"val_loss={metrics[0]['val_loss']:.4f}"

    record("torch.load(weights_only=True)", opens_weights_only)
    record("LightningModule.load_from_checkpoint", load_from_checkpoint)
    record(f"Trainer.fit(ckpt_path=...) to {RESUMED_EPOCHS} epochs", fit_resumes)
    record("Trainer.validate(ckpt_path=...)", validate_loads)
    return results


def main() -> int:
    import lightning.pytorch as pl

    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "runtime"):
        logging.getLogger(name).setLevel(logging.ERROR)
    print(f"lightning {pl.__version__}, torch {torch.__version__}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = [Path(p) for p in sys.argv[1:]] or runtime_checkpoints(work)
        for path in paths:
            print(f"\n{path}")
            for name, ok, detail in check(path, work / path.stem):
                failed |= not ok
                print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
