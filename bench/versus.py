#!/usr/bin/env python3
"""gantry, task-spooler and pueue side by side, in one run on one machine (issue 20).

    python3 bench/versus.py [JOBS] [SERIAL]        (defaults 1000 and 300)

Needs `tsp` (Debian's task-spooler) and `pueue`/`pueued` in PATH, and a release build of gantry
(`cargo build --release -p gantry --bins`). GANTRY_BIN=LABEL=PATH[,LABEL=PATH…] measures other
builds of `gantry` (each with its `gantryd` and `gantry-shim` beside it) in the same run. Every job is
`touch DIR/N`, so each system's start of job N is the file's modification time, taken by the
same clock for all three, and no system's own records are trusted.

For each system:
- submit cost: wall time of one CLI call that queues one job, over JOBS calls;
- throughput: JOBS jobs, 8 at a time, each submitted by its own CLI call, from the first call
  to the last job's start; gantry also as one call (`--array`);
- start to start in one serial queue: SERIAL jobs queued behind a 3 s job, the gaps between
  consecutive starts (p50, p99);
- the daemon when idle afterwards: RSS (gantry: the daemon and its spawner) and CPU over 10 s.
"""
import ctypes, json, os, shutil, signal, statistics, struct, subprocess, sys, tempfile, threading, time
from pathlib import Path

from common import cpu_seconds, machine, rss_mib

JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
SERIAL = int(sys.argv[2]) if len(sys.argv) > 2 else 300
SLOTS = 8
ROOT = Path(__file__).resolve().parent.parent
LIBC = ctypes.CDLL(None, use_errno=True)
IN_CREATE = 0x100
GANTRYS = [tuple(b.split("=", 1)) for b in os.environ.get("GANTRY_BIN", f"gantry={ROOT / 'target/release/gantry'}").split(",")]


def need(program):
    if not shutil.which(program):
        sys.exit(f"{program} is not installed: apt-get install task-spooler; cargo install pueue")


class Starts:
    """When each file appears in a directory (inotify's IN_CREATE, read as it happens, on the
    monotonic clock): a job's start, the moment its `touch` creates the file. File times are
    not used: the kernel stamps them with its coarse clock (4 ms steps here)."""

    def __init__(self, directory):
        self.fd = LIBC.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or LIBC.inotify_add_watch(self.fd, str(directory).encode(), IN_CREATE) < 0:
            sys.exit(f"inotify on {directory}: {os.strerror(ctypes.get_errno())}")
        self.times = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = os.read(self.fd, 1 << 16)
            now = time.monotonic_ns()
            offset = 0
            while offset < len(data):
                length = struct.unpack_from("iIII", data, offset)[3]
                offset += 16 + length
                self.times.append(now)

    def wait(self, count, limit=300):
        deadline = time.monotonic() + limit
        while len(self.times) < count:
            if time.monotonic() > deadline:
                sys.exit(f"only {len(self.times)} of {count} jobs started within {limit} s")
            time.sleep(0.01)
        return self.times[:count]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class System:
    """One scheduler under test: how to start it, queue a job, and find its daemon."""

    def __init__(self, work):
        self.work = Path(work)

    def cli_loop(self, directory, count, extra=()):
        began = time.monotonic_ns()
        for i in range(count):
            self.add([*extra, "touch", f"{directory}/{i}"])
        return began, time.monotonic_ns()


class Tsp(System):
    name = "task-spooler"

    def start(self):
        self.env = dict(os.environ, TS_SOCKET=str(self.work / "tsp.socket"), TS_MAXFINISHED="100000", TMPDIR=str(self.work))
        subprocess.run(["tsp", "-K"], env=self.env, capture_output=True)
        subprocess.run(["tsp", "-S", str(SLOTS)], env=self.env, check=True, capture_output=True)

    def slots(self, n):
        subprocess.run(["tsp", "-S", str(n)], env=self.env, check=True, capture_output=True)

    def add(self, argv):
        subprocess.run(["tsp", *argv], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def daemon_pids(self):
        out = subprocess.run(["pgrep", "-f", "^tsp"], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out if Path(f"/proc/{p}/environ").read_bytes().find(f"TS_SOCKET={self.work}".encode()) >= 0]

    def stop(self):
        subprocess.run(["tsp", "-K"], env=self.env, capture_output=True)


class Pueue(System):
    name = "pueue"

    def start(self):
        config = self.work / "pueue.yml"
        config.write_text(f"shared:\n  pueue_directory: {self.work}/pueue\n  runtime_directory: {self.work}/pueue\n  use_unix_socket: true\n  unix_socket_path: {self.work}/pueue.socket\n")
        self.base = ["pueue", "--config", str(config)]
        self.daemon = subprocess.Popen(["pueued", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if subprocess.run([*self.base, "status"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        self.slots(SLOTS)

    def slots(self, n):
        subprocess.run([*self.base, "parallel", str(n)], check=True, capture_output=True)

    def add(self, argv):
        subprocess.run([*self.base, "add", "--", *argv], check=True, stdout=subprocess.DEVNULL)

    def daemon_pids(self):
        return [self.daemon.pid]

    def stop(self):
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=10)


class Gantry(System):
    def __init__(self, work, name, program):
        super().__init__(work)
        self.name, self.program = name, program

    def start(self):
        self.env = dict(os.environ, GANTRY_STATE_DIR=str(self.work / "state"), GANTRY_NVML_LIBRARY="/nonexistent/libnvidia-ml.so.1")
        self.daemon = subprocess.Popen([self.program, "serve", "--listen", "127.0.0.1:0", "--simulate", str(SLOTS)], env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.work / "daemon.log", "w"))
        info = self.work / "state/daemon.json"
        for _ in range(500):
            if info.exists() and json.loads(info.read_text() or "{}").get("url"):
                return
            time.sleep(0.02)
        sys.exit(f"gantry did not start: {(self.work / 'daemon.log').read_text()}")

    def add(self, argv):
        subprocess.run([self.program, "submit", *argv[:-2], "--", *argv[-2:]], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def array(self, directory, count):
        began = time.monotonic_ns()
        subprocess.run([self.program, "submit", "--array", f"0..{count - 1}%{SLOTS}", "--", "touch", f"{directory}/{{}}"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        return began, time.monotonic_ns()

    def daemon_pids(self):
        children = Path(f"/proc/{self.daemon.pid}/task/{self.daemon.pid}/children").read_text().split()
        return [self.daemon.pid] + [int(c) for c in children if Path(f"/proc/{c}/comm").read_text().strip() == "gantry-shim"]

    def stop(self):
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=30)


def measure(make):
    work = tempfile.mkdtemp(prefix="versus-")
    s = make(work)
    s.start()
    try:
        row = {"system": s.name}
        many = Path(work, "many")
        many.mkdir()
        watch = Starts(many)
        began, submitted = s.cli_loop(many, JOBS)
        last = watch.wait(JOBS)[-1]
        row["submit_ms"] = (submitted - began) / JOBS / 1e6
        row["jobs_per_s"] = JOBS / ((last - began) / 1e9)
        if isinstance(s, Gantry):
            batch = Path(work, "batch")
            batch.mkdir()
            watch = Starts(batch)
            began, _ = s.array(batch, JOBS)
            row["batch_jobs_per_s"] = JOBS / ((watch.wait(JOBS)[-1] - began) / 1e9)
        serial = Path(work, "serial")
        serial.mkdir()
        watch = Starts(serial)
        if isinstance(s, Gantry):
            s.add(["--queue", "serial", "sleep", "3"])
            s.cli_loop(serial, SERIAL, extra=("--queue", "serial"))
        else:
            s.slots(1)
            s.add(["sleep", "3"])
            s.cli_loop(serial, SERIAL)
        times = watch.wait(SERIAL)
        gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
        row["serial_p50_ms"], row["serial_p99_ms"] = statistics.median(gaps), percentile(gaps, 99)
        time.sleep(2)
        pids = s.daemon_pids()
        before = cpu_seconds(pids)
        time.sleep(10)
        row["idle_cpu_pct"] = (cpu_seconds(pids) - before) / 10 * 100
        row["idle_rss_mib"] = sum(rss_mib(p) for p in pids)
        return row
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    for program in ("tsp", "pueue", "pueued", *(path for _, path in GANTRYS)):
        need(program)
    print(f"# {machine()}, {time.strftime('%Y-%m-%d')}, {JOBS} jobs {SLOTS} at a time, {SERIAL} in one serial queue")
    print("| system | CLI submit, ms/call | jobs/s, a call each | jobs/s, one call | serial start-to-start p50 / p99 ms | idle RSS MiB | idle CPU % |")
    print("|---|---|---|---|---|---|---|")
    gantrys = [lambda work, name=name, path=path: Gantry(work, name, path) for name, path in GANTRYS]
    for make in (Tsp, Pueue, *gantrys):
        r = measure(make)
        batch = f"{r['batch_jobs_per_s']:.0f}" if "batch_jobs_per_s" in r else "—"
        print(f"| {r['system']} | {r['submit_ms']:.2f} | {r['jobs_per_s']:.0f} | {batch} | {r['serial_p50_ms']:.2f} / {r['serial_p99_ms']:.2f} | {r['idle_rss_mib']:.1f} | {r['idle_cpu_pct']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
