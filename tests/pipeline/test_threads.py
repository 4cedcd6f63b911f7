"""ThreadGovernor: torch's thread count follows the cores other processes leave free."""
import pytest
import torch

from infdiff.threads import ThreadGovernor, _read_machine_jiffies, _read_own_jiffies


class FakeMachine:
    """A 2-core machine whose jiffy counters advance by what `advance` is told."""

    def __init__(self):
        self.busy = self.total = self.own = 0
        self.now = 0.0

    def advance(self, seconds, own_cores, other_cores, cores=2, hz=100):
        self.now += seconds
        self.total += int(cores * seconds * hz)
        self.own += int(own_cores * seconds * hz)
        self.busy += int((own_cores + other_cores) * seconds * hz)

    def governor(self, max_threads=2):
        return ThreadGovernor(max_threads=max_threads, interval_s=1.0, cores=2,
                              readers=(lambda: (self.busy, self.total), lambda: self.own), clock=lambda: self.now)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_one_busy_process_leaves_one_thread_until_it_stops(restore_threads):
    m = FakeMachine()
    gov = m.governor()
    m.advance(2.0, own_cores=1.0, other_cores=1.0)
    assert gov.update() == 1
    assert torch.get_num_threads() == 1
    m.advance(2.0, own_cores=1.0, other_cores=0.0)
    assert gov.update() == 2
    assert torch.get_num_threads() == 2


def test_light_load_of_others_keeps_all_threads(restore_threads):
    m = FakeMachine()
    gov = m.governor()
    m.advance(2.0, own_cores=2.0, other_cores=0.3)
    assert gov.update() == 2


def test_no_resample_before_the_interval(restore_threads):
    m = FakeMachine()
    gov = m.governor()
    m.advance(0.5, own_cores=0.0, other_cores=2.0)
    assert gov.update() == 2  # only 0.5 s of 1.0 s passed: the count is not changed yet
    m.advance(0.6, own_cores=0.0, other_cores=2.0)
    assert gov.update() == 1  # never below one thread


def test_max_threads_must_be_positive():
    with pytest.raises(ValueError, match="max_threads"):
        ThreadGovernor(max_threads=-1)


def test_real_proc_readers_advance():
    busy0, total0 = _read_machine_jiffies()
    own0 = _read_own_jiffies()
    x = torch.randn(512, 512)
    for _ in range(200):
        x = (x @ x).tanh()
    busy1, total1 = _read_machine_jiffies()
    assert total1 >= total0 and busy1 >= busy0
    assert _read_own_jiffies() > own0


@pytest.mark.parametrize("adapt", [True, False])
def test_training_consults_the_governor_only_when_asked(tiny_cfg, monkeypatch, adapt, restore_threads):
    import dataclasses

    import infdiff.train as train_module

    calls = []

    class Recorder:
        def update(self):
            calls.append(torch.get_num_threads())
            return torch.get_num_threads()

    monkeypatch.setattr(train_module, "ThreadGovernor", Recorder)
    cfg = dataclasses.replace(tiny_cfg, train=dataclasses.replace(tiny_cfg.train, steps=3, adapt_threads=adapt, device="cpu"))
    train_module.Trainer(cfg, quiet=True).fit()
    assert len(calls) == (3 if adapt else 0)
