#!/usr/bin/env python3
"""Builds of gantry against each other, alternately, on what a batch of trivial jobs costs and
what an idle daemon holds (issue 20). On a VM whose speed drifts by tens of percent between runs
(bench/versus.py's figures), the CPU a job costs, taken from the whole machine, moves far less
than the rate, and alternating the builds spreads the drift over both.

    GANTRY_BIN=LABEL=PATH[,LABEL=PATH…] python3 bench/dispatch.py [JOBS] [ROUNDS]   (2000, 3)

Each PATH is a `gantry` with its `gantryd` and `gantry-shim` beside it (default: this tree's
release build). Per round and build:
- a batch: JOBS jobs of `touch DIR/N` as one array, 8 at a time on 8 simulated GPUs; jobs/s from
  the submit to the last start, and busy CPU time of all CPUs (/proc/stat) per job meanwhile;
- idle: a daemon on a fresh state directory, then restarted on it (the plugin cache warm), each
  measured 12 s after its start: VmRSS, its anonymous and file-backed parts, and its CPU over 20 s.
"""
import shutil, sys, tempfile, time
from pathlib import Path

from common import TICK, cpu_seconds, machine, status_mib
import versus

JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def busy_ticks():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def batch(name, program):
    work = tempfile.mkdtemp(prefix="dispatch-")
    g = versus.Gantry(work, name, program)
    g.start()
    try:
        directory = Path(work, "batch")
        directory.mkdir()
        starts = versus.Starts(directory)
        before = busy_ticks()
        began, _ = g.array(directory, JOBS)
        last = starts.wait(JOBS)[-1]
        cpu_us = (busy_ticks() - before) / TICK * 1e6 / JOBS
        return JOBS / ((last - began) / 1e9), cpu_us
    finally:
        g.stop()
        shutil.rmtree(work, ignore_errors=True)


def idle(name, program):
    work = tempfile.mkdtemp(prefix="dispatch-idle-")
    rows = []
    for start in ("fresh", "restart"):
        g = versus.Gantry(work, name, program)
        g.start()
        try:
            time.sleep(12)
            pid = g.daemon.pid
            before = cpu_seconds([pid])
            time.sleep(20)
            cpu = (cpu_seconds([pid]) - before) / 20 * 100
            rows.append((start, *(status_mib(pid, k) for k in ("VmRSS", "RssAnon", "RssFile")), cpu))
        finally:
            g.stop()
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main():
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}, {JOBS} jobs 8 at a time, {ROUNDS} rounds")
    print("| build | round | batch jobs/s | CPU per job (all CPUs) |")
    print("|---|---|---|---|")
    for r in range(1, ROUNDS + 1):
        # In turn first and last: a machine that slows down through a run (this VM does, by a
        # quarter within minutes) must not count against whichever build always comes second.
        for name, path in versus.GANTRYS if r % 2 else versus.GANTRYS[::-1]:
            rate, cpu_us = batch(name, path)
            print(f"| {name} | {r} | {rate:.0f} | {cpu_us:.0f} µs |", flush=True)
    print()
    print("| build | start | VmRSS | anonymous | file-backed | idle CPU |")
    print("|---|---|---|---|---|---|")
    for name, path in versus.GANTRYS[::-1] if ROUNDS % 2 else versus.GANTRYS:
        for start, rss, anon, file, cpu in idle(name, path):
            print(f"| {name} | {start} | {rss:.1f} MiB | {anon:.1f} MiB | {file:.1f} MiB | {cpu:.2f} % |", flush=True)


if __name__ == "__main__":
    main()
