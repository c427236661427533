"""Multi-process training on torch.distributed: 2 CPU processes on gloo, launched for real.

Each launch runs tests/ddp_scripts/train_ddp.py, started three ways: plainly (rank 0 starts
rank 1), under torchrun, and with strategy="ddp_spawn". Every rank dumps what it ended with;
the tests compare the dumps with each other and with a single-process run that sees, step for
step, the union of the samples the two ranks saw.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from ddp_scripts.ddp_task import SEED, ManualRegressor, Regressor, reference_loader
from runtime import MisconfigurationException, Trainer, seed_everything
from runtime.ddp import DDPStrategy, _reduce_name
from runtime.distributed_sampler import distribute_loader
from runtime.launchers import free_port
from runtime.strategy import SingleDeviceStrategy
from runtime_models import TinyRegressor, loader, quiet_trainer_args

SCRIPT = Path(__file__).parent / "ddp_scripts" / "train_ddp.py"
LAUNCH_TIMEOUT_S = 120
_LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
                       "MASTER_ADDR", "MASTER_PORT", "RUNTIME_LAUNCHER_PID", "RUNTIME_DIST_TIMEOUT",
                       "RUNTIME_DIST_INIT_TIMEOUT", "TORCHELASTIC_RUN_ID")


def launch(out: Path, *args: str, torchrun: bool = False, as_module: bool = False,
           **env: str) -> subprocess.CompletedProcess:
    """Run the script (`python -m ddp_scripts.train_ddp` with `as_module`) in `out`, without launcher variables."""
    out.mkdir(parents=True, exist_ok=True)
    clean = {key: value for key, value in os.environ.items() if key not in _LAUNCHER_VARIABLES}
    env = {**clean, "OMP_NUM_THREADS": "1", "RUNTIME_DIST_TIMEOUT": "60", **env}
    if as_module:
        command = ["-m", "ddp_scripts.train_ddp"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPT.parents[1]), env.get("PYTHONPATH")]))
    else:
        command = [str(SCRIPT)]
    prefix = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
    return subprocess.run([sys.executable, *prefix, *command, str(out), *args], capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S, cwd=out, env=env)


def dumps(out: Path, tag: str) -> list[dict]:
    return [torch.load(out / f"{tag}_rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def assert_launch_ok(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"


def reference_weights(module_class: type, max_epochs: int, shuffle: bool, precision: str, **trainer_args) -> dict:
    """One process, batch 2 x 4, reading per step the 8 samples the two ranks read between them."""
    seed_everything(SEED)
    module = module_class()
    trainer = Trainer(accelerator="cpu", max_epochs=max_epochs, precision=precision, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **trainer_args)
    trainer.fit(module, reference_loader(shuffle))
    return module.state_dict()


@pytest.fixture(scope="module")
def self_launched(tmp_path_factory):
    """`python train_ddp.py OUT main`: fit (fp64, shuffled), validate, resume; rank 0 starts rank 1."""
    out = tmp_path_factory.mktemp("self_launched")
    run = launch(out, "main")
    assert_launch_ok(run)
    return out


@pytest.fixture(scope="module")
def torchrun(tmp_path_factory):
    """`python -m torch.distributed.run --nproc_per_node=2 train_ddp.py OUT manual` (fp32, in order)."""
    out = tmp_path_factory.mktemp("torchrun")
    run = launch(out, "manual", torchrun=True)
    assert_launch_ok(run)
    return out


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """`python train_ddp.py OUT short --strategy ddp_spawn` (fp32, in order, accumulate_grad_batches=2)."""
    out = tmp_path_factory.mktemp("spawned")
    run = launch(out, "short", "--strategy", "ddp_spawn")
    assert_launch_ok(run)
    return out


# --- the same model on every rank, and the same as one process ---------------------------------------------
@pytest.mark.parametrize(("launch_fixture", "tag"), [("self_launched", "fit"), ("self_launched", "resumed"),
                                                     ("torchrun", "manual"), ("spawned", "short")])
def test_both_ranks_end_with_identical_weights(request, launch_fixture, tag):
    rank0, rank1 = dumps(request.getfixturevalue(launch_fixture), tag)

    assert (rank0["global_rank"], rank1["global_rank"]) == (0, 1)
    assert rank0["weights"].keys() == rank1["weights"].keys()
    assert all(torch.equal(rank0["weights"][name], rank1["weights"][name]) for name in rank0["weights"])


def test_ddp_equals_one_process_with_the_global_batch_fp64(self_launched):
    """Shuffled by the DistributedSampler (seed + epoch), 4 epochs, SGD with momentum.

    DDP averages the two ranks' mean gradients; one process takes the mean over all 8 samples.
    That is the same sum in a different order, so the weights agree to rounding: 1e-12 in fp64.
    """
    rank0, _ = dumps(self_launched, "fit")
    expected = reference_weights(Regressor, max_epochs=4, shuffle=True, precision="64-true")

    for name, tensor in expected.items():
        torch.testing.assert_close(rank0["weights"][name], tensor, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("launch_fixture", "tag", "module_class", "accumulate"), [
    ("torchrun", "manual", ManualRegressor, 1),
    ("spawned", "short", Regressor, 2),  # the batches that do not step run under DDP's no_sync
])
def test_ddp_equals_one_process_with_the_global_batch_fp32(request, launch_fixture, tag, module_class, accumulate):
    """In order, 2 epochs, fp32: float32 sums taken in a different order stay within 1e-5 of each other."""
    rank0, _ = dumps(request.getfixturevalue(launch_fixture), tag)
    expected = reference_weights(module_class, max_epochs=2, shuffle=False, precision="32-true",
                                 accumulate_grad_batches=accumulate)

    for name, tensor in expected.items():
        torch.testing.assert_close(rank0["weights"][name], tensor, rtol=0, atol=1e-5)


def test_each_rank_trains_on_its_half_of_the_data(self_launched):
    rank0, rank1 = dumps(self_launched, "fit")

    assert rank0["train_batches"] == rank1["train_batches"] == 8  # 64 samples / 2 ranks / batch 4
    assert rank0["global_step"] == rank1["global_step"] == 32


# --- sync_dist, rank zero ----------------------------------------------------------------------------------
def test_sync_dist_metrics_are_equal_on_both_ranks_and_reduce_the_per_rank_values(self_launched):
    rank0, rank1 = dumps(self_launched, "fit")
    metrics0, metrics1 = rank0["metrics"], rank1["metrics"]

    for key in ("train_loss_step", "train_loss_epoch", "val_loss", "rank_mean", "rank_sum", "rank_max"):
        assert metrics0[key] == metrics1[key], key
    assert metrics0["rank_mean"] == 1.5  # mean of 1 and 2
    assert metrics0["rank_max"] == 2.0
    assert metrics0["rank_sum"] == 8 * 3.0  # 1 + 2 per step, summed over the epoch's 8 steps
    assert metrics0["local_loss"] != metrics1["local_loss"]  # not synced: each rank's own
    assert metrics0["train_loss_epoch"] == pytest.approx((metrics0["local_loss"] + metrics1["local_loss"]) / 2)
    validate0, validate1 = (torch.load(self_launched / f"validate_rank{rank}.pt") for rank in (0, 1))
    assert validate0 == validate1


def test_ranks_world_size_and_rank_zero_helpers(self_launched):
    rank0, rank1 = dumps(self_launched, "fit")

    assert rank0["world_size"] == rank1["world_size"] == 2
    assert (rank0["local_rank"], rank1["local_rank"]) == (0, 1)
    assert rank0["node_rank"] == rank1["node_rank"] == 0
    assert (rank0["is_global_zero"], rank1["is_global_zero"]) == (True, False)
    assert (rank0["rank_zero_only_rank"], rank1["rank_zero_only_rank"]) == (0, 1)
    assert (rank0["progress_bar_enabled"], rank1["progress_bar_enabled"]) == (True, False)
    assert rank0["pid"] != rank1["pid"]


def test_logs_are_written_once_by_rank_zero(self_launched):
    versions = sorted(path.name for path in (self_launched / "logs" / "lightning_logs").iterdir())

    assert versions == ["version_0"]
    assert (self_launched / "logs" / "lightning_logs" / "version_0" / "metrics.csv").is_file()


# --- checkpoints -------------------------------------------------------------------------------------------
def test_checkpoints_are_written_once_by_rank_zero(self_launched):
    writes = (self_launched / "writes.txt").read_text().split("\n")[:-1]
    names = [f"epoch={epoch}-step={8 * (epoch + 1)}.ckpt" for epoch in range(4)]
    directory = self_launched / "logs" / "lightning_logs" / "version_0" / "checkpoints"

    assert writes == [line for name in names for line in (f"0 {name}", "0 last.ckpt")]
    assert sorted(path.name for path in directory.iterdir()) == sorted([*names, "last.ckpt"])


def test_a_ddp_checkpoint_loads_in_one_process_without_a_module_prefix(self_launched):
    path = self_launched / "logs" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    rank0, _ = dumps(self_launched, "fit")

    saved = torch.load(path, weights_only=True)["state_dict"]
    assert saved.keys() == rank0["weights"].keys()  # the module's own names: no "module." prefix
    assert all(torch.equal(saved[name], rank0["weights"][name]) for name in saved)
    loaded = Regressor.load_from_checkpoint(path)  # an fp32 module, in this one process
    assert all(torch.equal(loaded.state_dict()[name], saved[name].float()) for name in saved)


def test_resuming_under_ddp_from_an_epoch_checkpoint_reaches_the_uninterrupted_weights(self_launched):
    straight, _ = dumps(self_launched, "fit")
    resumed0, resumed1 = dumps(self_launched, "resumed")

    assert resumed0["global_step"] == 32 and resumed0["current_epoch"] == 4
    for resumed in (resumed0, resumed1):
        assert all(torch.equal(resumed["weights"][name], straight["weights"][name]) for name in straight["weights"])


# --- stopping and failing ----------------------------------------------------------------------------------
def test_a_stop_asked_on_one_rank_stops_every_rank_at_that_epoch(torchrun):
    rank0, rank1 = dumps(torchrun, "manual")

    assert rank0["current_epoch"] == rank1["current_epoch"] == 2  # max_epochs=4; rank 1 asked after epoch 1


def test_a_rank_that_crashes_ends_the_run_with_an_error_naming_it(tmp_path):
    started = time.monotonic()
    run = launch(tmp_path / "crash", "crash")
    elapsed = time.monotonic() - started

    assert run.returncode != 0
    assert elapsed < 60, f"the run took {elapsed:.0f} s to end"
    assert "planned failure in training_step on rank 1" in run.stderr
    assert "rank 1 (pid" in run.stderr and "ending the run on all ranks" in run.stderr


def test_a_rank_that_cannot_reach_the_others_fails_naming_master_addr_and_port(tmp_path):
    port = str(free_port())
    run = launch(tmp_path / "alone", "short", RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                 MASTER_PORT=port, RUNTIME_DIST_INIT_TIMEOUT="2")

    assert run.returncode != 0
    assert f"MASTER_ADDR=127.0.0.1 MASTER_PORT={port}" in run.stderr
    assert "RUNTIME_DIST_INIT_TIMEOUT" in run.stderr


def test_python_dash_m_self_launches_the_same_module(tmp_path):
    out = tmp_path / "as_module"
    assert_launch_ok(launch(out, "short", as_module=True))
    rank0, rank1 = dumps(out, "short")

    assert (rank0["world_size"], rank1["global_rank"]) == (2, 1)
    assert all(torch.equal(rank0["weights"][name], rank1["weights"][name]) for name in rank0["weights"])


# --- spawn -------------------------------------------------------------------------------------------------
def test_ddp_spawn_hands_the_trained_state_back_to_the_main_process(spawned):
    rank0, _ = dumps(spawned, "short")
    main = torch.load(spawned / "main_process.pt", weights_only=True)

    assert all(torch.equal(main["weights"][name], rank0["weights"][name]) for name in rank0["weights"])
    assert main["global_step"] == 8  # 2 epochs x 8 batches, one step per 2
    assert main["metrics"]["rank_mean"] == 1.5


# --- one process -------------------------------------------------------------------------------------------
def test_ddp_with_one_device_trains_in_this_process_like_a_single_device(tmp_path):
    torch.manual_seed(0)
    single = TinyRegressor()
    torch.manual_seed(0)
    ddp = TinyRegressor()
    Trainer(accelerator="cpu", max_epochs=2, **quiet_trainer_args(tmp_path)).fit(single, loader())

    trainer = Trainer(accelerator="cpu", devices=1, strategy="ddp", max_epochs=2, **quiet_trainer_args(tmp_path))
    trainer.fit(ddp, loader())

    assert isinstance(trainer.strategy, DDPStrategy)
    assert (trainer.world_size, trainer.global_rank, trainer.is_global_zero) == (1, 0, True)
    assert trainer.lightning_module is ddp
    assert isinstance(trainer.train_dataloader.sampler, DistributedSampler)
    assert not torch.distributed.is_initialized()  # the run left the group it joined
    assert all(torch.equal(ddp.state_dict()[name], tensor) for name, tensor in single.state_dict().items())


def test_strategy_choice():
    assert isinstance(Trainer(accelerator="cpu").strategy, SingleDeviceStrategy)
    assert isinstance(Trainer(accelerator="cpu", devices=2).strategy, DDPStrategy)
    assert Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn").strategy.start_method == "spawn"
    assert Trainer(accelerator="cpu", devices=2).world_size == 2
    custom = DDPStrategy(find_unused_parameters=True)
    assert Trainer(accelerator="cpu", devices=2, strategy=custom).strategy is custom


@pytest.mark.parametrize("name", ["fsdp", "deepspeed"])
def test_other_strategies_point_to_lightning(name):
    with pytest.raises(MisconfigurationException, match="--target lightning"):
        Trainer(accelerator="cpu", devices=2, strategy=name)


def test_a_launcher_world_size_that_disagrees_with_devices_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(MisconfigurationException, match="WORLD_SIZE=4.*--nproc_per_node"):
        Trainer(accelerator="cpu", devices=2, strategy="ddp")


def test_sync_dist_with_a_reduction_that_cannot_be_distributed_names_the_supported_ones():
    assert _reduce_name("avg") == "mean" and _reduce_name(torch.max) == "max"
    with pytest.raises(MisconfigurationException, match="'mean', 'sum', 'max' or 'min'"):
        _reduce_name(torch.median)


# --- the sampler swap --------------------------------------------------------------------------------------
def _dataset(n: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32))


def _collate(batch):
    return torch.stack([item[0] for item in batch])


def test_the_distributed_loader_keeps_the_loader_settings_and_its_shuffle():
    shuffled = DataLoader(_dataset(), batch_size=3, shuffle=True, drop_last=True, collate_fn=_collate)

    train = distribute_loader(shuffled, num_replicas=2, rank=1, shuffle=None, seed=7)

    assert isinstance(train.sampler, DistributedSampler)
    assert (train.sampler.shuffle, train.sampler.rank, train.sampler.num_replicas, train.sampler.seed) == (
        True, 1, 2, 7)
    assert (train.batch_size, train.drop_last, train.collate_fn) == (3, True, _collate)
    assert distribute_loader(train, 2, 1, None, 7) is train
    evaluation = distribute_loader(shuffled, num_replicas=2, rank=1, shuffle=False, seed=7)
    assert evaluation.sampler.shuffle is False
    in_order = distribute_loader(DataLoader(_dataset(), batch_size=2), num_replicas=2, rank=1, shuffle=None, seed=0)
    assert in_order.sampler.shuffle is False
    assert [batch[0].tolist() for batch in in_order] == [[1.0, 3.0], [5.0, 7.0], [9.0]]


def test_a_sampler_with_its_own_meaning_is_not_silently_replaced():
    weighted = DataLoader(_dataset(), sampler=WeightedRandomSampler([1.0] * 10, 10))
    with_replacement = DataLoader(_dataset(), sampler=RandomSampler(_dataset(), replacement=True))

    for custom in (weighted, with_replacement):
        with pytest.raises(MisconfigurationException, match="use_distributed_sampler=False"):
            distribute_loader(custom, 2, 0, None, 0)


def test_a_converted_fixture_trains_under_ddp_with_only_its_trainer_arguments_changed(tmp_path):
    """The converter's output scales out as it is: `devices=2, strategy="ddp"` is the only edit
    (plus a line that reports what each rank did)."""
    fixture = Path(__file__).parents[1] / "fixtures" / "quickstart_synthetic" / "expected.py"
    source = fixture.read_text()
    assert source.count('accelerator="auto"') == 1
    script = tmp_path / "train.py"
    report = '\nprint(f"rank {trainer.global_rank}/{trainer.world_size}: {trainer.global_step} steps", flush=True)\n'
    script.write_text(source.replace('accelerator="auto"', 'accelerator="cpu", devices=2, strategy="ddp"') + report)
    clean = {key: value for key, value in os.environ.items() if key not in _LAUNCHER_VARIABLES}

    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S,
                         cwd=tmp_path, env={**clean, "OMP_NUM_THREADS": "1", "RUNTIME_DIST_TIMEOUT": "60"})

    assert_launch_ok(run)
    reports = sorted(line for line in run.stdout.splitlines() if line.startswith("rank "))
    assert [line.split(":")[0] for line in reports] == ["rank 0/2", "rank 1/2"]
    assert len({line.split(": ")[1] for line in reports}) == 1  # both ranks took the same number of steps
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").is_file()
