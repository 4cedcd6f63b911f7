"""pytest-benchmark form of bench/train_step.py and bench/sampler.py at their smallest: one
training step of the paper-shaped preset at 32^2 (all coordinates and 1/4), and DDIM sampling
of one MNIST-preset image at its training resolution, for `--benchmark-compare`.

    pytest bench/ --benchmark-only

Not collected by the default test run (tests live in tests/).
"""
from fractions import Fraction

import pytest

from .sampler import STEPS, make_sampler
from .train_step import make_trainer, step_fn

RESOLUTION = 32


@pytest.fixture(scope="module")
def trainer():
    return make_trainer(RESOLUTION, "cpu")


@pytest.mark.parametrize("fraction", [Fraction(1), Fraction(1, 4)], ids=["1", "1/4"])
def test_train_step(benchmark, trainer, fraction):
    model_trainer, x0 = trainer
    benchmark.group = f"train_step paper_shape {RESOLUTION}^2"
    benchmark.pedantic(step_fn(model_trainer, x0, fraction), rounds=3, warmup_rounds=1)


def test_sampler_ddim(benchmark):
    sampler = make_sampler("cpu")
    benchmark.group = f"sampler mnist DDIM {STEPS} steps"
    out = benchmark.pedantic(lambda: sampler.sample(1, sampler.train_resolution, steps=STEPS, sampler="ddim",
                                                    generator=sampler.generator(0), batch=1), rounds=2)
    assert out.shape[0] == 1
