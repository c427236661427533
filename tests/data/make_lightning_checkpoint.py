"""Write the Lightning-side fixtures of the interop tests (run with lightning==2.6.6 installed).

    python tests/data/make_lightning_checkpoint.py

Trains tests/data/interop_model.py with `lightning.pytorch` on the CPU for 2 epochs of 8
steps and writes, next to this script:
  lightning_2_6_6.ckpt            last.ckpt of ModelCheckpoint(save_last=True): the end of epoch 1
  lightning_2_6_6_mid_epoch.ckpt  a ModelCheckpoint(every_n_train_steps=12) file: epoch 1, 4 batches in
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from interop_model import EPOCHS, build  # noqa: E402


def main() -> None:
    if pl.__version__ != "2.6.6":
        print(f"warning: lightning {pl.__version__} is installed; the fixture is named for 2.6.6", file=sys.stderr)
    Regressor, Data = build(pl)
    pl.seed_everything(0)
    with tempfile.TemporaryDirectory() as work:
        epoch_end = ModelCheckpoint(dirpath=Path(work) / "epochs", save_last=True)
        mid_epoch = ModelCheckpoint(dirpath=Path(work) / "steps", every_n_train_steps=12, save_top_k=-1)
        trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, default_root_dir=work,
                             enable_progress_bar=False, callbacks=[epoch_end, mid_epoch])
        trainer.fit(Regressor(), datamodule=Data())
        shutil.copyfile(epoch_end.last_model_path, HERE / "lightning_2_6_6.ckpt")
        shutil.copyfile(Path(work) / "steps" / "epoch=1-step=12.ckpt", HERE / "lightning_2_6_6_mid_epoch.ckpt")
    print(f"wrote {HERE / 'lightning_2_6_6.ckpt'} and {HERE / 'lightning_2_6_6_mid_epoch.ckpt'}")


if __name__ == "__main__":
    main()
