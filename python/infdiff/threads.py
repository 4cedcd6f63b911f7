"""Intra-op threads that follow the cores other processes leave free.

Why: torch splits each op over its intra-op threads and waits for the slowest. When another
process keeps one of two cores busy, one of our two threads waits for a time slice at every
op, and training fell from 2.4 to 0.29 it/s (0.12x) in issue 13's measurement. One thread on
the free core runs at about half the idle rate instead. `ThreadGovernor.update()`, called
once per training step, samples the machine's CPU time (Linux /proc/stat) and this process's
(/proc/self/stat) every `interval_s` seconds and sets torch's thread count to the cores the
others leave idle (at least 1, at most the count it started with)."""
import os
import time

import torch


def _read_machine_jiffies(path="/proc/stat"):
    """(busy, total) CPU jiffies of all cores since boot."""
    with open(path) as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _read_own_jiffies(path="/proc/self/stat"):
    """User + system jiffies of this process (all its threads) since it started."""
    with open(path) as fh:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        rest = fh.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


class ThreadGovernor:
    """Keeps torch.get_num_threads() at the number of cores that other processes leave free.

    max_threads: the most threads to use (default: torch's count at construction).
    interval_s: how often the load is sampled; shorter follows load faster but reacts to
    noise. readers: (machine, own) jiffy readers, replaceable for tests."""

    def __init__(self, max_threads=None, interval_s=5.0, cores=None, readers=None, clock=time.monotonic):
        self.max_threads = max_threads or torch.get_num_threads()
        if self.max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {self.max_threads}")
        self.interval_s = interval_s
        self.cores = cores or os.cpu_count() or 1
        self._machine, self._own = readers or (_read_machine_jiffies, _read_own_jiffies)
        self._clock = clock
        self.enabled = True
        try:
            self._last = (self._clock(), *self._machine(), self._own())
        except (OSError, ValueError, IndexError):  # no /proc (macOS, Windows): leave threads alone
            self.enabled = False
        self.threads = self.max_threads

    def others_busy_cores(self, sample):
        """Cores' worth of CPU time other processes used between the last sample and `sample`."""
        _, busy0, total0, own0 = self._last
        _, busy1, total1, own1 = sample
        elapsed = (total1 - total0) / self.cores  # jiffies per core in the interval
        if elapsed <= 0:
            return 0.0
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / elapsed

    def update(self):
        """Resample when `interval_s` has passed; returns the thread count in use."""
        if not self.enabled or self._clock() - self._last[0] < self.interval_s:
            return self.threads
        sample = (self._clock(), *self._machine(), self._own())
        others = self.others_busy_cores(sample)
        self._last = sample
        # a core counts as taken when others use more than half of it
        free = self.cores - int(others + 0.5)
        threads = max(1, min(self.max_threads, free))
        if threads != self.threads:
            torch.set_num_threads(threads)
            self.threads = threads
        return self.threads
