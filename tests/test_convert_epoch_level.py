"""Epoch-level patterns: ReduceLROnPlateau on a validation metric, learning rates changed or read
by hand, and hand-written early stopping / best-weights saving (EarlyStopping, ModelCheckpoint)."""

from pathlib import Path

import libcst as cst
import pytest

from migrate.analysis import printing, stopping
from migrate.analysis.nodes import code
from migrate.convert import convert_code
from migrate.findings import Severity

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# A small script whose validation loss stops improving after a few epochs (random labels).
SCRIPT = '''\
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X = torch.randn(96, 6)
y = torch.randint(0, 2, (96,))
train_loader = DataLoader(TensorDataset(X[:64], y[:64]), batch_size=16, shuffle=True)
val_loader = DataLoader(TensorDataset(X[64:], y[64:]), batch_size=16)
model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
patience = 2
SETUP

for epoch in range(30):
    model.train()
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    val_loss = 0.0
    correct = 0
    with torch.no_grad():
        for xb, yb in val_loader:
            out = model(xb)
            val_loss += criterion(out, yb).item()
            correct += (out.argmax(1) == yb).sum().item()
    val_loss /= len(val_loader)
    val_acc = correct / len(val_loader.dataset)
    print(f"epoch {epoch}: val_loss={val_loss:.4f} val_acc={val_acc:.3f}")
EPOCH_END
print("best", BEST)
'''

COUNTER = '''\
    if val_loss < best:
        best = val_loss
        bad_epochs = 0
    else:
        bad_epochs += 1
        if bad_epochs CHECK patience:
            break'''


def script(setup: str, epoch_end: str, best: str = "best") -> str:
    return SCRIPT.replace("SETUP", setup).replace("EPOCH_END", epoch_end).replace("BEST", best)


def convert(source: str):
    result = convert_code(source, "original.py")
    assert "# migrate: review" not in result.output
    compile(result.output, "original.py", "exec")
    return result


def codes(result) -> list[str]:
    return [f.code for f in result.findings]


# --- recognisers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("test, mode, delta", [
    ("val_loss < best", "min", None),
    ("val_loss < best - min_delta", "min", "min_delta"),
    ("best - val_loss > min_delta", "min", "min_delta"),
    ("val_loss + 1e-3 < best", "min", "1e-3"),
    ("best > val_loss", "min", None),
    ("acc > best + min_delta", "max", "min_delta"),
    ("acc - best > 0.01", "max", "0.01"),
])
def test_improvement_tests(test, mode, delta):
    found = stopping.improvement(cst.parse_expression(test), {"val_loss", "acc"}, {"best"})
    assert found is not None and found.mode == mode
    assert (code(found.min_delta) if found.min_delta is not None else None) == delta


@pytest.mark.parametrize("test", [
    "val_loss <= best",  # ties count as improvements: EarlyStopping's comparison is strict
    "val_loss < best + min_delta",  # a negative min_delta
    "val_loss < best * 0.99",  # relative threshold
    "val_loss < best - a - b",
    "val_loss == best",
])
def test_improvement_tests_that_are_not_early_stopping(test):
    assert stopping.improvement(cst.parse_expression(test), {"val_loss"}, {"best"}) is None


@pytest.mark.parametrize("check, patience", [
    ("bad >= patience", "patience"),
    ("bad == patience", "patience"),
    ("patience <= bad", "patience"),
    ("bad > patience", "patience + 1"),
    ("bad > 3", "4"),
    ("2 < bad", "3"),
])
def test_patience_from_the_stop_check(check, patience):
    stmt = cst.parse_statement(f"if {check}:\n    print('stop')\n    break\n")
    assert code(stopping.stop_check(stmt, "bad")) == patience


def test_stop_check_needs_a_break_last():
    assert stopping.stop_check(cst.parse_statement("if bad >= p:\n    break\n    x = 1\n"), "bad") is None
    assert stopping.stop_check(cst.parse_statement("if bad < p:\n    break\n"), "bad") is None


@pytest.mark.parametrize("text, sign", [
    ('float("inf")', 1), ("float('-inf')", -1), ('-float("inf")', -1), ("math.inf", 1), ("-np.inf", -1),
    ("1e9", 0), ("0.0", 0),
])
def test_infinite_starting_values(text, sign):
    assert stopping.infinity_sign(cst.parse_expression(text)) == sign


def test_concatenated_fstrings_are_read_piece_by_piece():
    expr = cst.parse_expression('print(f"loss={a / n:.4f} " f"acc={b:.3f}")')
    assert [(text, code(value)) for text, value in printing.pieces(expr)] == [("loss=", "a / n"), (" acc=", "b")]


# --- early stopping -------------------------------------------------------------------------------

def test_counter_compared_with_ge_keeps_the_patience():
    result = convert(script('best = float("inf")\nbad_epochs = 0', COUNTER.replace("CHECK", ">=")))
    assert "EarlyStopping(monitor='val_loss', mode='min', patience=patience)" in result.output
    assert "best = trainer.early_stopping_callback.best_score.item()" in result.output
    assert 'best = float("inf")' not in result.output and "bad_epochs" not in result.output
    assert "ModelCheckpoint" not in result.output
    assert "MIG133" in codes(result)


def test_counter_compared_with_gt_waits_one_epoch_more(tmp_path):
    from migrate.verify import verify_pair

    source = script('best = float("inf")\nbad_epochs = 0', COUNTER.replace("CHECK", ">"))
    result = convert(source)
    assert "EarlyStopping(monitor='val_loss', mode='min', patience=patience + 1)" in result.output
    original, converted = tmp_path / "original.py", tmp_path / "converted.py"
    original.write_text(source)
    converted.write_text(result.output)
    verdict = verify_pair(original, converted, steps=200)
    # both stop after the same epoch: 6 epochs of 4 batches, well before the 30 allowed
    assert verdict.equivalent, verdict
    assert len(verdict.original.losses) == len(verdict.converted.losses) == 24


def test_counter_check_after_the_if_else():
    epoch_end = COUNTER.replace("\n        if bad_epochs CHECK patience:\n            break", "") + \
        "\n    if bad_epochs >= patience:\n        break"
    result = convert(script('best = float("inf")\nbad_epochs = 0', epoch_end))
    assert "EarlyStopping(monitor='val_loss', mode='min', patience=patience)" in result.output


def test_mode_max_on_accuracy_with_min_delta():
    epoch_end = '''\
    if val_acc > best_acc + 0.01:
        best_acc = val_acc
        waited = 0
    else:
        waited += 1
        if waited >= patience:
            break'''
    result = convert(script('best_acc = -float("inf")\nwaited = 0', epoch_end, best="best_acc"))
    assert "EarlyStopping(monitor='val_acc', mode='max', patience=patience, min_delta=0.01)" in result.output
    assert "best_acc = trainer.early_stopping_callback.best_score.item()" in result.output


def test_save_on_improvement_becomes_model_checkpoint():
    epoch_end = '''\
    if val_acc > best_acc:
        best_acc = val_acc
        torch.save(model.state_dict(), "out/best.pth")'''
    result = convert(script("best_acc = float('-inf')", epoch_end, best="best_acc") +
                     'model.load_state_dict(torch.load("out/best.pth"))\n')
    out = result.output
    assert "ModelCheckpoint(dirpath='out', filename='best', monitor='val_acc', mode='max', save_top_k=1)" in out
    assert "EarlyStopping" not in out
    assert "best_acc = trainer.checkpoint_callback.best_model_score.item()" in out
    assert "lit_model = LitModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, model=model)" in out
    assert {"MIG134", "MIG136"} <= set(codes(result)) and "MIG135" not in codes(result)


def test_finite_starting_best_is_kept_in_the_hook_and_stops_the_trainer():
    # `best = 1e9` is not EarlyStopping's infinite start: the statement stays, `break` stops the Trainer
    result = convert(script("best = 1e9\nbad_epochs = 0", COUNTER.replace("CHECK", ">=")))
    out = result.output
    assert "EarlyStopping" not in out
    hook = out.split("def on_validation_epoch_end(self):")[1].split("def ")[0]
    assert "if self.trainer.sanity_checking:" in hook
    assert "self.trainer.should_stop = True" in hook and "break" not in hook
    assert "MIG137" in codes(result)


def test_fixture_keeps_the_checkpoint_name_and_reloads_the_best_weights():
    result = convert((FIXTURES / "early_stopping_checkpoint" / "original.py").read_text())
    out = result.output
    assert "ModelCheckpoint(dirpath='.', filename='best_model', monitor='val_loss', mode='min', save_top_k=1)" in out
    assert "ckpt_path" not in out  # only the save and the reload read it, and both are gone
    assert "lit_model = LitModule.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, model=model)" in out
    warnings = [f for f in result.findings if f.severity is Severity.WARNING]
    assert [f.code for f in warnings] == ["MIG135"]


# --- learning rates -------------------------------------------------------------------------------

DECAY = '''\
    if (epoch + 1) % 2 == 0:
        for g in optimizer.param_groups:
            g["lr"] *= 0.5'''


def test_manual_decay_stays_in_the_train_epoch_end_hook():
    result = convert(script("", DECAY, best="0"))
    hook = result.output.split("def on_train_epoch_end(self):")[1].split("def ")[0]
    assert "if (self.current_epoch + 1) % 2 == 0:" in hook
    assert "for g in self.optimizers().param_groups:" in hook
    assert "MIG132" in codes(result)


def test_manual_decay_before_validation_end_work_goes_to_the_validation_hook():
    # the decay ran before a statement that reads a validation metric: keep that order
    epoch_end = DECAY + "\n    history.append(val_loss)"
    result = convert(script("history = []", epoch_end, best="history"))
    hook = result.output.split("def on_validation_epoch_end(self):")[1].split("def ")[0]
    assert hook.index("self.trainer.sanity_checking") < hook.index('g["lr"] *= 0.5') < hook.index("self.history.append")
    assert "def on_train_epoch_end" not in result.output


def test_lr_read_only_to_print_is_logged_by_lr_monitor():
    epoch_end = '    lr = optimizer.param_groups[0]["lr"]\n    print(f"lr={lr:.4f}")'
    result = convert(script("", epoch_end, best="0"))
    assert 'callbacks=[LearningRateMonitor(logging_interval="epoch")]' in result.output
    assert "from runtime.callbacks import LearningRateMonitor" in result.output
    assert "MIG131" in codes(result)


def test_lr_read_used_for_more_than_printing_is_not_dropped():
    epoch_end = '    lr = optimizer.param_groups[0]["lr"]\n    lrs.append(lr)'
    result = convert_code(script("lrs = []", epoch_end, best="lrs"), "t.py")
    assert "LearningRateMonitor" not in result.output and "MIG131" not in codes(result)


def test_plateau_scheduler_monitors_the_logged_name():
    source = script("scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)",
                    "    scheduler.step(val_loss)", best="0")
    source = source.replace("val_loss={val_loss:.4f}", "valid loss {val_loss:.4f}")
    result = convert(source)
    assert "self.log('valid_loss'" in result.output
    assert "\"monitor\": 'valid_loss'" in result.output
    assert "MIG130" in codes(result)
