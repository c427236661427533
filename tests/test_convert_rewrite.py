"""Rewrite tests: whole scripts through convert_code (status, shape, idempotence, compile)."""

from pathlib import Path

import libcst as cst
import pytest

from migrate.convert import convert_code
from migrate.findings import Severity, Status

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INPUTS = Path(__file__).parent / "convert_inputs"
CASES = sorted(INPUTS.glob("*.py"))


@pytest.fixture(scope="module", params=CASES, ids=[p.stem for p in CASES])
def converted(request):
    source = request.param.read_text()
    return request.param, convert_code(source, str(request.param))


def test_converts_without_review(converted):
    path, result = converted
    assert result.status is Status.CONVERTED
    assert "# migrate: review" not in result.output
    assert not [f for f in result.findings if f.severity is Severity.NOT_CONVERTED]
    compile(result.output, str(path), "exec")


def test_idempotent(converted):
    _, result = converted
    again = convert_code(result.output)
    assert again.status is Status.UNCHANGED and again.output == result.output


def test_target_shape(converted):
    _, result = converted
    out = result.output
    assert "from runtime import LightningDataModule, LightningModule, Trainer" in out
    assert "def training_step(self" in out and "def configure_optimizers(self)" in out
    assert "self.parameters()" in out
    for gone in (".backward()", ".zero_grad()", "optimizer.step()", ".to(device)", "model.train()", "model.eval()"):
        assert gone not in out
    assert "trainer.fit(lit_model, datamodule=datamodule)" in out


def test_findings_have_line_ranges(converted):
    path, result = converted
    codes = {f.code for f in result.findings}
    assert {"MIG101", "MIG106"} <= codes
    train = next(f for f in result.findings if f.code == "MIG101")
    assert f"{path}:" in train.message and train.line > 0


def test_quickstart_metrics_and_order():
    out = convert_code((INPUTS / "quickstart.py").read_text()).output
    assert "self.log('avg_loss', self.loss_fn(pred, y) / len(X), batch_size=len(X))" in out
    assert "def val_dataloader(self):\n        return DataLoader(self.test_data, batch_size=64, shuffle=True)" in out
    # the model is still built where the original built it, before the Trainer
    assert out.index("model = NeuralNetwork()") < out.index("lit_model = NeuralNetworkModule(model")
    assert "log_every_n_steps=100" in out


def test_mnist_argparse_drives_trainer_and_module():
    out = convert_code((INPUTS / "mnist_example.py").read_text()).output
    assert "NetModule(model, lr=args.lr, gamma=args.gamma)" in out
    assert 'accelerator="auto" if use_cuda else "cpu"' in out
    assert "max_epochs=args.epochs" in out and "log_every_n_steps=args.log_interval" in out
    assert "limit_train_batches=1 if args.dry_run else None" in out
    assert '"interval": "epoch"' in out
    assert 'torch.save(model.state_dict(), "mnist_cnn.pt")' in out
    # printed as `100. * correct / len(test_loader.dataset)`: logged as that accuracy, a weighted mean
    assert (
        "self.log('accuracy', 100. * pred.eq(target.view_as(pred)).sum() / len(data), batch_size=len(data))"
        in out
    )


def test_helpers_optimizer_reset_each_epoch():
    out = convert_code((INPUTS / "helpers_tqdm.py").read_text()).output
    assert "self.optimizers().optimizer.state.clear()" in out
    assert "self.optim_class(self.parameters(), lr=self.hparams.lr)" in out
    assert "collate_fn=collate" in out
    assert "gc.collect()" in out and "empty_cache" not in out


def test_lightning_target():
    out = convert_code((INPUTS / "inline_loops.py").read_text(), target="lightning").output
    assert "from lightning.pytorch import LightningDataModule, LightningModule, Trainer" in out
    assert "from runtime" not in out


def test_no_training_loop_and_syntax_error():
    result = convert_code("import torch\nprint(torch.randn(2))\n")
    assert result.status is Status.NO_TRAINING_LOOP and result.output is None
    with pytest.raises(cst.ParserSyntaxError):
        convert_code("def broken(:\n")


def _with_epoch_statement(statement: str) -> str:
    source = (INPUTS / "inline_loops.py").read_text().replace(
        "        print('val_loss: ', val_loss.item())", f"        print('val_loss: ', val_loss.item())\n    {statement}")
    return source.replace("num_epochs = 3", "num_epochs = 3\nhistory = []")


def test_unknown_epoch_statement_is_kept_for_review():
    result = convert_code(_with_epoch_statement("history.append(logits.shape)"), "t.py")
    assert "# migrate: review" in result.output and "history.append(logits.shape)" in result.output
    review = [f for f in result.findings if f.code == "MIG301"]
    assert review and review[0].severity is Severity.NOT_CONVERTED and review[0].line > 0


@pytest.mark.parametrize("name", ["helpers_tqdm"])
def test_trains_bit_identically(tmp_path, name):
    from migrate.verify import verify_pair

    original = INPUTS / f"{name}.py"
    target = tmp_path / f"{name}.py"
    target.write_text(convert_code(original.read_text()).output)
    verdict = verify_pair(original, target, steps=50)
    assert verdict.equivalent


def test_epoch_statement_reading_a_metric_moves_to_the_validation_hook():
    source = _with_epoch_statement("history.append(val_loss)") + "print(history)\n"
    result = convert_code(source, "t.py")
    assert "# migrate: review" not in result.output
    hook = result.output.split("def on_validation_epoch_end(self):")[1].split("def ")[0]
    assert "if self.trainer.sanity_checking:" in hook
    assert "val_loss = self.trainer.callback_metrics['val_loss'].item()" in hook
    assert "self.history.append(val_loss)" in hook
    assert "self.history = []" in result.output
    assert "print(lit_model.history)" in result.output
    assert [f.code for f in result.findings if f.code == "MIG111"] == ["MIG111"]


def test_epoch_housekeeping_is_kept_without_review():
    result = convert_code(_with_epoch_statement("gc.collect()"), "t.py")
    assert "# migrate: review" not in result.output
    assert "def on_train_epoch_end(self):\n        gc.collect()" in result.output


def test_results_read_after_training_come_from_trainer_test():
    source = (FIXTURES / "evaluate_returns_metrics" / "original.py").read_text()
    out = convert_code(source, "t.py").output
    assert 'test_metrics = trainer.test(lit_model, datamodule=datamodule)[0]' in out
    assert "final_loss = test_metrics['final_loss']" in out


def _fixture(case: str):
    return convert_code((FIXTURES / case / "original.py").read_text(), "original.py")


def test_scaled_ratio_over_a_sample_count_is_logged_as_the_printed_accuracy():
    # `100 * correct / total` with `total += len(labels)`: a weighted mean under the printed name
    result = _fixture("fashion_mnist_cnn_scheduler")
    out = result.output
    assert "self.log('val_accuracy', 100 * (predictions == labels).sum() / len(images), batch_size=len(images))" in out
    assert "'correct'" not in out
    assert not [f for f in result.findings if f.severity is Severity.WARNING]


def test_floored_ratio_is_logged_exactly_with_a_warning():
    # `100 * correct // total`: the mean cannot floor, so the exact ratio is logged, and MIG201 says so
    result = _fixture("inline_loops_in_main")
    assert "100 * (predicted == labels).sum() / len(data[0])" in result.output
    assert "//" not in result.output.split("def validation_step")[1].split("def ")[0]
    floored = [f for f in result.findings if f.code == "MIG201"]
    assert len(floored) == 1 and floored[0].severity is Severity.WARNING
    assert floored[0].message.startswith("'test_images': printed value was floored")


def test_ratio_over_an_outside_name_is_a_sample_mean_with_a_warning():
    # `correct / n_val`, n_val bound outside the loop: taken for the sample count, flagged MIG202
    result = _fixture("inline_loops_module_level")
    assert "self.log('val_acc', (logits.argmax(dim=1) == y).sum() / len(val_batch[0]), batch_size=len(val_batch[0]))" in result.output
    assumed = [f for f in result.findings if f.code == "MIG202"]
    assert len(assumed) == 1 and assumed[0].severity is Severity.WARNING and "n_val" in assumed[0].message


# --- hand-written trainer classes (pytorch-template style) -------------------------------------
TRAINER_CLASS = '''import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class Trainer:
    def __init__(self, model, criterion, optimizer, loader, val_loader):
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.loader = loader
        self.val_loader = val_loader
        self.best = float("inf")

    def train_epoch(self):
        self.model.train()
        total, n = 0.0, 0
        for x, y in self.loader:
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(x)
            n += len(x)
        return dict(loss=total / n)

    def evaluate(self):
        self.model.eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for x, y in self.val_loader:
                total += self.criterion(self.model(x), y).item() * len(x)
                n += len(x)
        return {"val_loss": total / n}

    def fit(self, epochs):
        for epoch in range(epochs):
            metrics = self.train_epoch()
            metrics.update(self.evaluate())
            if metrics["val_loss"] < self.best:
                self.best = metrics["val_loss"]
            print(f"epoch {epoch}: loss={metrics['loss']:.4f} val_loss={metrics['val_loss']:.4f}")
'''
TRAINER_DRIVER = '''

torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
loader = DataLoader(data, batch_size=8, shuffle=True)
val_loader = DataLoader(data, batch_size=16)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
Trainer(model, nn.MSELoss(), optimizer, loader, val_loader).fit(2)
'''


def test_trainer_class_fitted_without_a_name_takes_epochs_from_fit():
    # `Cls(...).fit(2)`: the epoch count is fit()'s argument, the loss a constructor expression
    result = convert_code(TRAINER_CLASS + TRAINER_DRIVER, "t.py")
    out = result.output
    assert result.status is Status.CONVERTED and "# migrate: review" not in out
    assert "class Trainer:" not in out and "def train_epoch" not in out and "def fit" not in out
    assert "from runtime import LightningDataModule, LightningModule, Trainer\n" in out
    assert "Trainer(max_epochs=2, " in out and "self.criterion = nn.MSELoss()" in out
    assert "self.log('loss', " in out and "self.log('val_loss', " in out
    # state the class kept (`self.best`) is read in the loop: it lives on the module
    assert "self.best = float(\"inf\")" in out and "if val_loss < self.best:" in out
    codes = [f.code for f in result.findings]
    assert codes.count("MIG152") == 2 and "MIG151" not in codes
    mig150 = next(f for f in result.findings if f.code == "MIG150")
    assert mig150.line == 6 and mig150.message.endswith("its fit() loop converted; class removed")
    # findings point into the class: the train loop is train_epoch()'s
    train = next(f for f in result.findings if f.code == "MIG101")
    assert train.line == 18 and "t.py:18-24" in train.message
    again = convert_code(out)
    assert again.status is Status.UNCHANGED


def test_trainer_class_still_used_is_kept_and_the_runtime_trainer_renamed():
    source = TRAINER_CLASS + TRAINER_DRIVER + "print(Trainer.__name__)\n"
    result = convert_code(source, "t.py")
    out = result.output
    assert "class Trainer:" in out and "print(Trainer.__name__)" in out
    assert "import LightningDataModule, LightningModule, Trainer as LightningTrainer\n" in out
    assert "trainer = LightningTrainer(max_epochs=2, " in out
    assert next(f for f in result.findings if f.code == "MIG150").message.endswith("the class is kept: other code uses it")
    compile(out, "t.py", "exec")


def test_trainer_class_helper_method_becomes_a_function():
    # fit() calls a method that runs no loop: it stays, as a function, reading the dict as it was then
    source = (TRAINER_CLASS + TRAINER_DRIVER).replace(
        "            metrics = self.train_epoch()\n", "            metrics = self.train_epoch()\n            self.show(metrics)\n"
    ).replace("    def evaluate(self):", "    def show(self, metrics):\n        pass\n\n    def evaluate(self):")
    out = convert_code(source, "t.py").output
    assert "def show(metrics):" in out and "class Trainer" not in out
    assert 'show({"loss": loss})' in out.split("def on_train_epoch_end(self):")[1].split("def ")[0]


def test_trainer_class_the_reading_cannot_say_is_left_alone():
    # a loop helper calling another method through self: not read as functions, and no crash
    inner = (TRAINER_CLASS + TRAINER_DRIVER).replace(
        "            total += loss.item() * len(x)\n", "            total += self.scale(loss.item()) * len(x)\n"
    ).replace("    def evaluate(self):", "    def scale(self, v):\n        return v\n\n    def evaluate(self):")
    assert convert_code(inner, "t.py").status is Status.NO_TRAINING_LOOP
