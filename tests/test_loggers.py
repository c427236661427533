"""Loggers: Lightning's directory layout, file formats and rank-zero behaviour."""

import argparse
import csv
import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from runtime.loggers import CSVLogger, Logger, TensorBoardLogger
from runtime.rank_zero import _rank_from_environment, rank_zero_only, rank_zero_warn

REPO_ROOT = Path(__file__).resolve().parents[1]


def read_csv(path):
    with open(path, newline="") as file:
        reader = csv.reader(file)
        return next(reader), list(reader)


def read_scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.fixture
def rank_one(monkeypatch):
    monkeypatch.setattr(rank_zero_only, "rank", 1)


# --- version directories -------------------------------------------------------------


def test_first_run_is_version_0_and_the_next_run_version_1(tmp_path):
    first = CSVLogger(tmp_path)
    first.log_hyperparams({})
    second = CSVLogger(tmp_path)

    assert first.log_dir == str(tmp_path / "lightning_logs" / "version_0")
    assert second.version == 1
    assert second.log_dir == str(tmp_path / "lightning_logs" / "version_1")


def test_next_version_is_one_past_the_highest_existing(tmp_path):
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)
    (tmp_path / "lightning_logs" / "version_3").mkdir()
    (tmp_path / "lightning_logs" / "version_notes").mkdir()

    assert CSVLogger(tmp_path).version == 4


def test_int_version_names_the_version_directory(tmp_path):
    assert CSVLogger(tmp_path, name="exp", version=7).log_dir == str(
        tmp_path / "exp" / "version_7"
    )


def test_str_version_is_the_directory_name_verbatim(tmp_path):
    assert CSVLogger(tmp_path, name="exp", version="baseline").log_dir == str(
        tmp_path / "exp" / "baseline"
    )


@pytest.mark.parametrize("name", ["", None])
def test_empty_name_puts_versions_directly_in_save_dir(tmp_path, name):
    logger = CSVLogger(tmp_path, name=name)

    assert logger.name == ""
    assert logger.root_dir == str(tmp_path)
    assert logger.log_dir == str(tmp_path / "version_0")


@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_constructing_a_logger_and_reading_its_dirs_creates_nothing(
    tmp_path, logger_class
):
    logger = logger_class(tmp_path / "logs")
    _ = logger.version, logger.log_dir, logger.root_dir

    assert not (tmp_path / "logs").exists()


def test_version_is_fixed_once_read(tmp_path):
    logger = CSVLogger(tmp_path)
    log_dir = logger.log_dir
    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)

    assert logger.log_dir == log_dir


# --- metrics.csv ---------------------------------------------------------------------


def test_metrics_csv_has_step_then_keys_in_first_seen_order(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"train_loss": 0.5, "epoch": 0}, step=0)
    logger.log_metrics({"train_loss": 0.25, "epoch": 0}, step=1)
    logger.finalize("success")

    header, rows = read_csv(Path(logger.log_dir) / "metrics.csv")
    assert header == ["step", "train_loss", "epoch"]
    assert rows == [["0", "0.5", "0"], ["1", "0.25", "0"]]


def test_tensor_metrics_are_written_as_numbers(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": torch.tensor(1.5)}, step=0)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv")[1] == [["0", "1.5"]]


def test_metrics_logged_at_the_same_step_share_one_row(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"train_loss": 0.5}, step=9)
    logger.log_metrics({"val_loss": 0.7, "epoch": 0}, step=9)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv") == (
        ["step", "train_loss", "val_loss", "epoch"],
        [["9", "0.5", "0.7", "0"]],
    )


def test_same_step_metrics_merge_into_a_row_already_written(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.log_metrics({"loss": 0.4}, step=1)
    logger.save()
    logger.log_metrics({"acc": 0.9}, step=1)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv") == (
        ["step", "loss", "acc"],
        [["0", "0.5", ""], ["1", "0.4", "0.9"]],
    )


def test_the_same_key_twice_at_one_step_keeps_both_values(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 0.5}, step=3)
    logger.log_metrics({"loss": 0.4}, step=3)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv")[1] == [
        ["3", "0.5"],
        ["3", "0.4"],
    ]


def test_a_key_first_seen_after_a_flush_widens_the_header_and_keeps_earlier_rows(
    tmp_path,
):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"train_loss": 0.5}, step=0)
    logger.save()
    logger.log_metrics({"train_loss": 0.4, "val_acc": 0.8}, step=1)
    logger.log_metrics({"train_loss": 0.3}, step=2)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv") == (
        ["step", "train_loss", "val_acc"],
        [["0", "0.5", ""], ["1", "0.4", "0.8"], ["2", "0.3", ""]],
    )


def test_rows_are_buffered_until_step_plus_one_is_a_multiple_of_the_flush_interval(
    tmp_path,
):
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=10)
    metrics_csv = Path(logger.log_dir) / "metrics.csv"
    for step in range(9):
        logger.log_metrics({"loss": 1.0}, step=step)
    assert not metrics_csv.exists()

    logger.log_metrics({"loss": 1.0}, step=9)
    assert len(read_csv(metrics_csv)[1]) == 10


def test_buffer_is_flushed_after_flush_interval_rows_whatever_the_steps(tmp_path):
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=3)
    for step in (0, 10, 20):
        logger.log_metrics({"loss": 1.0}, step=step)

    assert len(read_csv(Path(logger.log_dir) / "metrics.csv")[1]) == 3


def test_finalize_writes_buffered_rows(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")

    assert read_csv(Path(logger.log_dir) / "metrics.csv")[1] == [["0", "1.0"]]


def test_steps_default_to_the_row_count(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0})
    logger.log_metrics({"loss": 0.5})
    logger.save()

    assert [row[0] for row in read_csv(Path(logger.log_dir) / "metrics.csv")[1]] == [
        "0",
        "1",
    ]


def test_prefix_namespaces_metric_keys(tmp_path):
    logger = CSVLogger(tmp_path, prefix="fit")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()

    assert read_csv(Path(logger.log_dir) / "metrics.csv")[0] == ["step", "fit-loss"]


def test_a_reused_version_directory_starts_a_fresh_metrics_csv(tmp_path):
    first = CSVLogger(tmp_path, version=0)
    first.log_metrics({"old": 1.0}, step=0)
    first.save()

    second = CSVLogger(tmp_path, version=0)
    with pytest.warns(UserWarning, match="exists and is not empty"):
        second.log_metrics({"new": 2.0}, step=0)
    second.save()

    assert read_csv(Path(second.log_dir) / "metrics.csv") == (
        ["step", "new"],
        [["0", "2.0"]],
    )


# --- hparams.yaml --------------------------------------------------------------------


def test_hparams_yaml_holds_nested_hparams_as_plain_types(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams(
        {
            "lr": torch.tensor(0.5),
            "layers": (64, 32),
            "optim": {"name": "sgd", "momentum": 0.9},
            "dtype": torch.float32,
        }
    )

    text = (Path(logger.log_dir) / "hparams.yaml").read_text()
    assert yaml.safe_load(text) == {
        "lr": 0.5,
        "layers": [64, 32],
        "optim": {"name": "sgd", "momentum": 0.9},
        "dtype": "torch.float32",
    }


def test_hparams_from_a_namespace_are_saved_like_a_dict(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams(argparse.Namespace(batch_size=32, epochs=3))

    assert yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()) == {
        "batch_size": 32,
        "epochs": 3,
    }


def test_hparams_yaml_is_written_without_pyyaml(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1, "optim": {"name": "adam"}})

    assert json.loads((Path(logger.log_dir) / "hparams.yaml").read_text()) == {
        "lr": 0.1,
        "optim": {"name": "adam"},
    }


def test_an_empty_hparams_yaml_is_left_when_none_were_logged(tmp_path):
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")

    assert yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()) == {}


# --- TensorBoard ---------------------------------------------------------------------


def test_tensorboard_scalars_can_be_read_back_from_the_event_file(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": torch.tensor(0.5)}, step=1)
    logger.log_metrics({"loss": 0.25}, step=2)
    logger.finalize("success")

    assert list(Path(logger.log_dir).glob("events.out.tfevents.*"))
    assert read_scalars(logger.log_dir, "loss") == [(1, 0.5), (2, 0.25)]


def test_tensorboard_dict_metrics_become_one_chart_with_several_lines(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": {"train": 0.5, "val": 0.7}}, step=1)
    logger.finalize("success")

    assert read_scalars(Path(logger.log_dir) / "loss_val", "loss") == [
        (1, pytest.approx(0.7))
    ]


def test_tensorboard_hyperparams_go_to_hparams_yaml_with_placeholder_hp_metric(
    tmp_path,
):
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1, "optim": {"name": "adam"}})
    logger.finalize("success")

    assert yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text()) == {
        "lr": 0.1,
        "optim": {"name": "adam"},
    }
    assert read_scalars(logger.log_dir, "hp_metric") == [(0, -1.0)]


def test_tensorboard_logs_no_hp_metric_when_default_hp_metric_is_off(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, default_hp_metric=False)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")

    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    assert accumulator.Tags()["scalars"] == ["loss"]


def test_tensorboard_sub_dir_is_nested_in_the_version_dir(tmp_path):
    logger = TensorBoardLogger(tmp_path, sub_dir="train")

    assert logger.log_dir == str(tmp_path / "lightning_logs" / "version_0" / "train")


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_tensorboard_log_graph_uses_the_example_input_array(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = torch.nn.Linear(3, 2)
    model.example_input_array = torch.zeros(1, 3)
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    logger.log_graph(model)
    logger.finalize("success")

    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    assert accumulator.Tags()["graph"]


def test_tensorboard_logger_can_be_pickled_after_writing(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"loss": 1.0}, step=0)

    assert pickle.loads(pickle.dumps(logger)).log_dir == logger.log_dir
    logger.finalize("success")


def test_importing_the_loggers_does_not_import_tensorboard():
    code = (
        "import sys, runtime.loggers; "
        "assert 'tensorboard' not in sys.modules; "
        "assert 'torch.utils.tensorboard' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_tensorboard_logger_without_tensorboard_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)

    with pytest.raises(
        ModuleNotFoundError, match=r'pip install "torch-migrate\[tensorboard\]"'
    ):
        TensorBoardLogger(tmp_path)


def test_broken_tensorboard_install_names_the_fix_on_first_write(tmp_path, monkeypatch):
    logger = TensorBoardLogger(tmp_path)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)

    with pytest.raises(ModuleNotFoundError, match="or use CSVLogger, the default"):
        logger.log_metrics({"loss": 1.0}, step=0)


# --- rank zero -----------------------------------------------------------------------


def test_rank_zero_only_skips_the_call_on_rank_1(rank_one):
    calls = []
    record = rank_zero_only(calls.append)

    assert record("x") is None
    assert calls == []


def test_rank_zero_only_runs_the_call_on_rank_0(monkeypatch):
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    calls = []
    rank_zero_only(calls.append)("x")

    assert calls == ["x"]


@pytest.mark.parametrize("logger_class", [CSVLogger, TensorBoardLogger])
def test_loggers_write_nothing_on_rank_1(tmp_path, rank_one, logger_class):
    logger = logger_class(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.experiment.add_text("note", "anything")
    logger.finalize("success")

    assert list(tmp_path.iterdir()) == []


def test_rank_comes_from_the_launcher_environment(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert _rank_from_environment() == 0

    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert _rank_from_environment() == 2


def test_rank_zero_warn_points_at_the_line_that_called_it():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rank_zero_warn("careful")

    assert caught[0].filename == __file__


def test_rank_zero_warn_is_silent_on_rank_1(rank_one):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank_zero_warn("careful")


# --- the interface -------------------------------------------------------------------


def test_a_custom_logger_needs_only_lightnings_abstract_members():
    class PrintLogger(Logger):
        name = "print"
        version = 0

        def log_metrics(self, metrics, step=None):
            pass

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    logger = PrintLogger()
    logger.log_graph(torch.nn.Linear(1, 1))
    logger.after_save_checkpoint(None)
    logger.finalize("success")
    assert logger.log_dir is None
