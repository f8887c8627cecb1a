"""Parity cases for ReLU and LeakyReLU."""
import torch
import torch.nn.functional as F

from casewriter import Case


def generate(out, rng):
    n = 0
    for shape in [(1, 3, 7, 5), (2, 17), (3, 4, 1, 9)]:
        x = torch.randn(*shape)
        c = Case(out, f"relu_{n}")
        c.param("kind", 1).param("slope", 0.0).array("input", x).array("output", F.relu(x)).close()
        n += 1
        for slope in (0.01, 0.2):
            c = Case(out, f"leaky_{n}")
            c.param("kind", 2).param("slope", slope).array("input", x).array("output", F.leaky_relu(x, slope)).close()
            n += 1
    return n
