#!/usr/bin/env python3
"""What one `gantry submit` costs, builds against each other and against `tsp`, call by call in
turn (issue 20). bench/versus.py times submits while the jobs already queued run on the same two
cores, and runs the systems one after another, so on a VM whose speed drifts by tens of percent
within minutes its figure follows the drift and the running jobs more than the client; here
nothing runs and the calls alternate, so every system sees the same machine.

    GANTRY_BIN=LABEL=PATH[,LABEL=PATH…] python3 bench/submit.py [CALLS] [ROUNDS]   (400, 3)

One daemon per build (simulated GPUs, its own state directory), and one task-spooler whose only
slot is taken by a long job; then CALLS rounds of one call each: `gantry submit --hold -- true`
per build (held, so nothing starts), `tsp true` (queued behind the long job). The wall time of
each call as Python's `subprocess.run` sees it (fork, exec, the call, exit): p50 and p90 per
system, for each of ROUNDS such runs with fresh daemons; `/bin/true` is timed the same way, as
what any process start costs in this harness.
"""
import os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

from common import machine
import versus

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 400
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def main():
    for program in ("tsp", *(path for _, path in versus.GANTRYS)):
        versus.need(program)
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}, {CALLS} calls per system, {ROUNDS} rounds, in turn")
    print("| round | system | submit p50 ms | p90 ms |")
    print("|---|---|---|---|")
    for r in range(1, ROUNDS + 1):
        work = Path(tempfile.mkdtemp(prefix="submit-"))
        gantrys = [versus.Gantry(work / name, name, path) for name, path in versus.GANTRYS]
        tsp = versus.Tsp(work / "tsp")
        for s in (*gantrys, tsp):
            s.work.mkdir()
            s.start()
        tsp.slots(1)
        tsp.add(["sleep", "3600"])
        calls = [(g.name, [g.program, "submit", "--hold", "--", "true"], g.env) for g in gantrys]
        calls += [("task-spooler", ["tsp", "true"], tsp.env), ("/bin/true", ["/bin/true"], os.environ)]
        times = {name: [] for name, _, _ in calls}
        try:
            for i in range(CALLS):
                # Each system first as often as last.
                for name, argv, env in calls if i % 2 else calls[::-1]:
                    began = time.monotonic_ns()
                    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
                    times[name].append((time.monotonic_ns() - began) / 1e6)
        finally:
            subprocess.run(["tsp", "-k"], env=tsp.env, capture_output=True)
            for s in (*gantrys, tsp):
                s.stop()
            shutil.rmtree(work, ignore_errors=True)
        for name, values in times.items():
            print(f"| {r} | {name} | {versus.percentile(values, 50):.2f} | {versus.percentile(values, 90):.2f} |", flush=True)


if __name__ == "__main__":
    main()
