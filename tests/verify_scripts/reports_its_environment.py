"""Reports one fact about the process it runs in per backward call, as that call's "loss".

A seeded draw from each RNG, then flags (1.0 true, 0.0 false) for how it was started.
"""

import os
import random
import sys

import numpy as np
import torch


def report(value: float) -> None:
    torch.tensor(float(value), dtype=torch.float64, requires_grad=True).backward()


here = os.path.dirname(os.path.abspath(__file__))
report(random.random())
report(np.random.random())
report(torch.rand((), dtype=torch.float64).item())
report(__name__ == "__main__")
report(sys.argv[1:] == ["--flag", "value"])
report(sys.path[0] == here)
report(os.getcwd() != here and os.listdir(".") == [])
report(os.environ.get("PYTHONHASHSEED") == "0")
report(not torch.cuda.is_available())
