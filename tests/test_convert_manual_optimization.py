"""Several optimizers stepped in one train loop (a GAN): manual optimization, in the loop's order."""

import ast

import libcst as cst

from migrate.analysis import analyse
from migrate.convert import convert_code
from migrate.findings import Status

# The generator is updated before the discriminator here, and built after it.
G_THEN_D = '''
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
data = torch.randn(64, 2)
loader = DataLoader(TensorDataset(data), batch_size=16, shuffle=True)
discriminator = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
generator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()

for epoch in range(2):
    for (real,) in loader:
        ones = torch.ones(real.size(0), 1)
        fake = generator(torch.randn(real.size(0), 4))
        opt_g.zero_grad()
        g_loss = bce(discriminator(fake), ones)
        g_loss.backward()
        opt_g.step()
        opt_d.zero_grad()
        d_loss = bce(discriminator(real), ones) + bce(discriminator(fake.detach()), 1 - ones)
        d_loss.backward(retain_graph=True)
        opt_d.step()
'''


def _method(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name)


def test_swapped_steps_keep_their_order():
    plan = analyse(cst.parse_module(G_THEN_D), "gan.py", G_THEN_D)
    assert plan.manual.optimizers == ["opt_g", "opt_d"]
    assert plan.manual.sequence == [
        ("zero_grad", "opt_g"), ("backward", "g_loss"), ("step", "opt_g"),
        ("zero_grad", "opt_d"), ("backward", "d_loss"), ("step", "opt_d"),
    ]
    assert plan.model_name == "generator"  # its output is detached for the D step
    assert "MIG120" in {f.code for f in plan.findings}

    result = convert_code(G_THEN_D, "gan.py")
    assert result.status is Status.CONVERTED
    out = result.output
    compile(out, "gan_converted.py", "exec")
    assert "self.automatic_optimization = False" in out
    assert "def __init__(self, discriminator, generator" in out  # both networks passed in, built as before
    step = "\n".join(ast.unparse(s) for s in _method(out, "training_step").body)
    assert step.splitlines()[0] == "opt_g, opt_d = self.optimizers()"
    calls = [line.strip() for line in step.splitlines() if "opt_" in line or "backward" in line][1:]
    assert calls == [
        "opt_g.zero_grad()", "self.manual_backward(g_loss)", "opt_g.step()",
        "opt_d.zero_grad()", "self.manual_backward(d_loss, retain_graph=True)", "opt_d.step()",
    ]
    assert "return" not in step
    configure = ast.unparse(_method(out, "configure_optimizers"))
    assert configure.splitlines()[-1].strip() == "return [opt_g, opt_d]"
    assert "self.discriminator.parameters()" in configure and "self.generator.parameters()" in configure
    assert "return self.generator(*args, **kwargs)" in out
    assert convert_code(out).status is Status.UNCHANGED
