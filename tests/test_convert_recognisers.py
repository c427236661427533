"""Unit tests for the conversion recognisers: each on a small inline source."""

import libcst as cst
import pytest

from migrate.analysis import device as dev
from migrate.analysis import epoch, printing
from migrate.analysis.plan import Accumulator
from migrate.analysis.loops import bind_call, epoch_range, unwrap_iter
from migrate.analysis.nodes import code, free_names, strip_item
from migrate.analysis.script import analyse, is_lightning_form
from migrate.rewrite.device import clean_statements


def expr(text):
    return cst.parse_expression(text)


@pytest.mark.parametrize("text", [
    'torch.device("cuda" if torch.cuda.is_available() else "cpu")',
    "'cuda' if torch.cuda.is_available() else 'cpu'",
    '"cuda:0"',
    "torch.accelerator.current_accelerator()",
])
def test_device_values(text):
    assert dev.is_device_value(expr(text))


def test_not_device_values():
    assert not dev.is_device_value(expr("torch.randn(3)"))
    assert not dev.is_device_value(expr('"hello"'))


def test_accelerator_follows_user_flag():
    assert code(dev.accelerator_for(dev.device_test(expr('torch.device("cuda" if use_cuda else "cpu")')))) == \
        '"auto" if use_cuda else "cpu"'
    assert code(dev.accelerator_for(dev.device_test(expr('"cuda" if torch.cuda.is_available() else "cpu"')))) == '"auto"'


def test_device_if_statement():
    stmt = cst.parse_statement("if use_accel:\n    device = torch.accelerator.current_accelerator()\nelse:\n    device = torch.device('cpu')\n")
    name, test = dev.device_if(stmt)
    assert name == "device" and code(test) == "use_accel"


@pytest.mark.parametrize("src, out", [
    ("x = x.to(device)\n", ""),
    ("x, y = x.to(device), y.to(device)\n", ""),
    ("x = x.to(device, dtype=torch.float)\n", "x = x.to(dtype=torch.float)\n"),
    ("model.cuda()\n", ""),
    ("model = Net().to(device)\n", "model = Net()\n"),
    ("p = out.cpu().numpy()\n", "p = out.cpu().numpy()\n"),
    ("x = x.to(device); y = y.to(device)\n", ""),
    ("model.cuda() if torch.cuda.is_available() else None\n", ""),
])
def test_device_cleanup(src, out):
    stmts = cst.parse_module(src).body
    assert "".join(code(s) for s in clean_statements(stmts, {"device"})) == out


def test_unwrap_iter():
    inner, enum, start, bar = unwrap_iter(expr("enumerate(tqdm(loader), 1)"))
    assert code(inner) == "loader" and enum and code(start) == "1" and bar
    inner, enum, start, bar = unwrap_iter(expr("enumerate(loader, 0)"))
    assert enum and start is None


@pytest.mark.parametrize("loop, epochs, start", [
    ("for e in range(n): pass\n", "n", None),
    ("for e in range(1, args.epochs + 1): pass\n", "args.epochs", "1"),
    ("for e in tqdm(range(10)): pass\n", "10", None),
])
def test_epoch_range(loop, epochs, start):
    found = epoch_range(cst.parse_statement(loop))
    assert code(found[0]) == epochs
    assert (code(found[1]) if found[1] is not None else None) == start


def test_bind_call_with_defaults():
    fn = cst.parse_statement("def train(model, loader, device, lr=0.1, scheduler=None):\n    pass\n")
    bound = bind_call(fn, expr("train(net, dl, dev, lr=lr)"))
    assert {k: code(v) for k, v in bound.items()} == {
        "model": "net", "loader": "dl", "device": "dev", "lr": "lr", "scheduler": "None"}


@pytest.mark.parametrize("src, expected", [
    ('print(f"loss: {loss:>7f}  [{current:>5d}]")', [("loss", "loss"), (None, "current")]),
    ("print('val_loss: ', val_loss.item())", [("val_loss", "val_loss.item()")]),
    ("print('Train MAE: %.3f / Validation MAE: %.3f' % (a, b))", [("train_mae", "a"), ("validation_mae", "b")]),
    ("print('Epoch: {} Loss: {:.6f}'.format(epoch, loss.item()))", [("epoch", "epoch"), ("loss", "loss.item()")]),
    ("print(' * Acc@1 {:.3f}'.format(top1))", [("acc1", "top1")]),
    ('print(f"d_loss={d / n:.4f} " f"ring_err={err:.4f}")', [("d_loss", "d / n"), ("ring_err", "err")]),
])
def test_print_pieces_and_labels(src, expected):
    got = [(printing.label(text), code(value)) for text, value in printing.pieces(expr(src))]
    assert got == expected


def test_strip_item_and_free_names():
    assert code(strip_item(expr("loss.item() * len(x)"))) == "loss * len(x)"
    assert free_names([cst.parse_statement("y = model(x) + z\n")]) == ["model", "x", "z"]


def test_lightning_form_detected():
    assert is_lightning_form(cst.parse_module("import lightning.pytorch as L\nclass M(L.LightningModule):\n    pass\n"))
    assert not is_lightning_form(cst.parse_module("class M(nn.Module):\n    pass\n"))


LOOP = '''
import torch
from torch import nn
model = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
sched = torch.optim.lr_scheduler.StepLR(opt, 1)
crit = nn.MSELoss()
for epoch in range(3):
    for x, y in loader:
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
    total = 0
    with torch.no_grad():
        for x, y in val_loader:
            total += crit(model(x), y).item() * len(x)
    print(f"val_loss {total / len(val_set):.4f}")
'''


def test_analyse_inline_plan():
    plan = analyse(cst.parse_module(LOOP), "t.py")
    assert plan.model_name == "model"
    assert plan.optimizer.name == "opt"
    assert plan.scheduler.interval == "step"
    assert "crit" in plan.attributes
    stages = [s.stage for s in plan.steps]
    assert stages == ["train", "val"]
    assert plan.steps[0].loss_name == "loss"
    log = [i for i in plan.steps[1].items if not isinstance(i, cst.CSTNode)][0]
    assert log.final_name() == "val_loss" and log.accumulator.final == "dataset"
    assert code(plan.epochs) == "3"


def test_no_training_loop():
    assert analyse(cst.parse_module("import torch\nx = torch.randn(3)\nprint(x)\n")) is None


def stmt(text):
    return cst.parse_statement(text)


@pytest.mark.parametrize("text", ["gc.collect()", "torch.cuda.empty_cache()"])
def test_housekeeping(text):
    assert epoch.is_housekeeping(stmt(text))


def test_not_housekeeping():
    assert not epoch.is_housekeeping(stmt("model.train()"))
    assert not epoch.is_housekeeping(stmt("gc.collect(2) if x else None"))


def test_metric_reads_and_updated_state():
    acc1 = Accumulator("top1_sum", final="dataset", alias="acc1")
    line = stmt("best_acc1 = max(acc1, best_acc1)")
    assert epoch.metric_reads(line, {"acc1": acc1}) == {"acc1": acc1}
    assert epoch.metric_reads(line, {"other": acc1}) == {}
    assert epoch.updated_state(line, {"best_acc1", "model"}) == ["best_acc1"]
    assert epoch.updated_state(stmt("history.append(acc1)"), {"history"}) == ["history"]


@pytest.mark.parametrize("text", [
    "(torch.cat(preds) == torch.cat(labels)).float().mean().item()",
    "(torch.cat(preds) == torch.cat(labels)).double().mean()",
])
def test_gathered_accuracy(text):
    preds, labels = Accumulator("preds", kind="list"), Accumulator("labels", kind="list")
    assert epoch.gathered_accuracy(expr(text), {"preds": preds, "labels": labels}) == (preds, labels)


def test_not_gathered_accuracy():
    preds, labels = Accumulator("preds", kind="list"), Accumulator("labels", kind="sum")
    lists = {"preds": preds, "labels": labels}
    assert epoch.gathered_accuracy(expr("(torch.cat(preds) == torch.cat(labels)).float().mean()"), lists) is None
    assert epoch.gathered_accuracy(expr("(torch.cat(preds) > 0).float().mean()"), lists) is None


def test_logger_calls_are_prints_with_percent_arguments():
    call = expr('log.info("epoch %d  val_loss %.4f  val_acc %.3f", epoch, val_loss, val_acc)')
    assert printing.is_print(call)
    labels = [printing.label(text) for text, _ in printing.pieces(call)]
    assert labels == ["epoch", "val_loss", "val_acc"]
    assert not printing.is_print(expr("results.info()"))


def _ratio_block():
    from migrate.analysis.loops import Block, Env

    block = Block(env=Env(), stage="val")
    block.accs["correct"] = Accumulator("correct")
    block.accs["total"] = Accumulator("total", is_count=True)
    return block


@pytest.mark.parametrize(
    "text, scale, floored",
    [
        ("correct / total", None, False),
        ("100 * correct / total", "100", False),
        ("100. * correct / total", "100.", False),
        ("correct * 100 / total", "100", False),
        ("100 * (correct / total)", "100", False),
        ("100 * correct // total", "100", True),
        ("correct // total", None, True),
    ],
)
def test_printed_ratio_of_an_accumulator(text, scale, floored):
    from migrate.analysis.loops import accumulator_ratio

    acc, divisor, found_scale, found_floored = accumulator_ratio(cst.parse_expression(text), _ratio_block())
    assert acc.name == "correct" and code(divisor) == "total"
    assert (code(found_scale) if found_scale is not None else None) == scale
    assert found_floored is floored


@pytest.mark.parametrize("text", ["k * correct / total", "total / correct", "correct + 1 / total", "loss / total"])
def test_not_printed_ratio(text):
    from migrate.analysis.loops import accumulator_ratio

    assert accumulator_ratio(cst.parse_expression(text), _ratio_block()) is None


WANDB_SCRIPT = """
import torch
import wandb
from torch.utils.data import DataLoader, TensorDataset

wandb.init(project="demo")
loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        wandb.log({"loss": loss.item()})
wandb.finish()
"""


def test_wandb_calls_are_kept_where_they_ran_with_a_warning():
    from migrate.convert import convert_code

    result = convert_code(WANDB_SCRIPT, "w.py")

    assert [f.line for f in result.findings if f.code == "MIG204"] == [16]
    assert 'wandb.log({"loss": loss.item()})' in result.output.split("def training_step")[1].split("def ")[0]
    assert 'wandb.init(project="demo")' in result.output and "wandb.finish()" in result.output


TWO_PHASES = """
import torch
from torch.utils.data import DataLoader, TensorDataset

loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))


def train_one_epoch(optimizer):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


optimizer = torch.optim.SGD(model[1].parameters(), lr=0.1)
for epoch in range(2):
    train_one_epoch(optimizer)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(3):
    train_one_epoch(optimizer){extra}
"""


def test_a_second_phase_with_the_same_work_folds_into_one_fit():
    from migrate.convert import convert_code

    result = convert_code(TWO_PHASES.format(extra=""), "p.py")

    assert "MIG160" in {f.code for f in result.findings}
    assert "max_epochs=5" in result.output
    assert "if self.current_epoch == 2:" in result.output
    assert "self.trainer.optimizers = [torch.optim.SGD(self.model.parameters(), lr=0.01)]" in result.output


def test_a_second_loop_doing_other_work_is_kept_for_review():
    from migrate.convert import convert_code

    result = convert_code(TWO_PHASES.format(extra="\n    torch.save(model.state_dict(), \"m.pt\")"), "p.py")

    assert "MIG160" not in {f.code for f in result.findings}
    assert [f.line for f in result.findings if f.code == "MIG301"] == [21]
    assert "# migrate: review (a second training loop" in result.output
