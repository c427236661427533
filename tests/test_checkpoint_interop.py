"""Checkpoints written by lightning.pytorch 2.6.6 load and resume here, and ours match theirs.

The fixtures come from tests/data/make_lightning_checkpoint.py (run it where lightning==2.6.6
is installed); the reverse direction, Lightning loading our files, is checked by
tests/data/check_runtime_ckpt_in_lightning.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import runtime
from runtime.callbacks import ModelCheckpoint

DATA = Path(__file__).parent / "data"
EPOCH_END = DATA / "lightning_2_6_6.ckpt"
MID_EPOCH = DATA / "lightning_2_6_6_mid_epoch.ckpt"


def _load_interop_model():
    spec = importlib.util.spec_from_file_location("interop_model", DATA / "interop_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


interop = _load_interop_model()
Regressor, Data = interop.build(runtime)


def needs(fixture: Path):
    return pytest.mark.skipif(
        not fixture.is_file(),
        reason=f"{fixture.relative_to(DATA.parent.parent)} is absent: generate it with "
               "`python tests/data/make_lightning_checkpoint.py` where lightning==2.6.6 is installed",
    )


def quiet_trainer(root, **args):
    return runtime.Trainer(**{"default_root_dir": root, "logger": False, "enable_progress_bar": False,
                              "enable_model_summary": False, **args})


def resume(tmp_path, ckpt_path):
    trainer = quiet_trainer(tmp_path, max_epochs=4)
    model = Regressor()
    with pytest.warns(UserWarning, match="dirpath has changed|add the following callbacks"):
        trainer.fit(model, datamodule=Data(), ckpt_path=ckpt_path)
    return trainer, model


@needs(EPOCH_END)
def test_the_lightning_checkpoint_opens_with_weights_only():
    checkpoint = torch.load(EPOCH_END, weights_only=True)
    assert checkpoint["pytorch-lightning_version"] == "2.6.6" and checkpoint["global_step"] == 16


@needs(EPOCH_END)
def test_load_from_checkpoint_rebuilds_the_lightning_trained_module():
    model = Regressor.load_from_checkpoint(EPOCH_END)
    saved = torch.load(EPOCH_END, weights_only=True)["state_dict"]
    assert dict(model.hparams) == {"hidden": 8, "lr": interop.LR}
    assert all(torch.equal(tensor, saved[name]) for name, tensor in model.state_dict().items())
    assert Data.load_from_checkpoint(EPOCH_END).hparams.batch_size == 8


@needs(EPOCH_END)
def test_fit_continues_a_lightning_run_from_its_epoch_end_checkpoint(tmp_path):
    trainer, _ = resume(tmp_path, EPOCH_END)
    optimizer = trainer.optimizers[0]
    assert trainer.current_epoch == 4 and trainer.global_step == 32
    assert optimizer.param_groups[0]["lr"] == pytest.approx(interop.LR * interop.GAMMA ** 4)
    assert int(next(iter(optimizer.state.values()))["step"]) == 32


@needs(MID_EPOCH)
def test_fit_continues_a_lightning_run_from_its_mid_epoch_checkpoint(tmp_path):
    trainer, _ = resume(tmp_path, MID_EPOCH)
    assert trainer.current_epoch == 4 and trainer.global_step == 32
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(interop.LR * interop.GAMMA ** 4)


@pytest.fixture(scope="module")
def runtime_twin(tmp_path_factory):
    """The fixtures' run, trained by the runtime: same model, data, epochs and checkpoint callbacks."""
    work = tmp_path_factory.mktemp("twin")
    runtime.seed_everything(0)
    epoch_end = ModelCheckpoint(dirpath=work / "epochs", save_last=True)
    mid_epoch = ModelCheckpoint(dirpath=work / "steps", every_n_train_steps=12, save_top_k=-1)
    quiet_trainer(work, max_epochs=interop.EPOCHS, callbacks=[epoch_end, mid_epoch]).fit(Regressor(),
                                                                                          datamodule=Data())
    return {EPOCH_END: Path(epoch_end.last_model_path), MID_EPOCH: work / "steps" / "epoch=1-step=12.ckpt"}


@pytest.mark.parametrize("fixture", [pytest.param(EPOCH_END, marks=needs(EPOCH_END), id="epoch_end"),
                                     pytest.param(MID_EPOCH, marks=needs(MID_EPOCH), id="mid_epoch")])
def test_our_checkpoint_of_the_same_run_has_lightnings_keys_and_counters(runtime_twin, fixture):
    theirs = torch.load(fixture, weights_only=True)
    ours = torch.load(runtime_twin[fixture], weights_only=True)
    assert ours.keys() - theirs.keys() == {"runtime_fit_loop", "rng_states"}
    assert theirs.keys() <= ours.keys()
    assert ours["loops"] == theirs["loops"]
    assert ours["callbacks"].keys() == theirs["callbacks"].keys()
    for key in ("epoch", "global_step", "hparams_name", "hyper_parameters", "datamodule_hyper_parameters"):
        assert ours[key] == theirs[key], key


def test_a_checkpoint_without_the_runtime_keys_resumes_from_lightnings_counters(tmp_path):
    trainer = quiet_trainer(tmp_path, max_epochs=2, enable_checkpointing=False)
    trainer.fit(Regressor(), datamodule=Data())
    checkpoint = torch.load(_save(trainer, tmp_path / "full.ckpt"), weights_only=True)
    del checkpoint["runtime_fit_loop"], checkpoint["rng_states"]
    torch.save(checkpoint, tmp_path / "lightning_shaped.ckpt")

    resumed = quiet_trainer(tmp_path, max_epochs=4, enable_checkpointing=False)
    resumed.fit(Regressor(), datamodule=Data(), ckpt_path=tmp_path / "lightning_shaped.ckpt")
    assert resumed.current_epoch == 4 and resumed.global_step == 32


def _save(trainer, path: Path) -> Path:
    trainer.save_checkpoint(path)
    return path
