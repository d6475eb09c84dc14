"""gantry's Slurm provider against sbatch on the same local Slurm (tests/slurm/start.sh), run as
root: how long from submitting a trivial job until its command runs, and, with JOBS jobs in flight,
the daemon's CPU and the provider calls it makes per second.

    python3 bench/providers.py GANTRY_BINARY [RUNS] [JOBS]

"Runs" is when the command itself wrote the clock into its working directory, so both sides are
measured the same way, by the job. The provider polls every `poll_ms` (200 here) doubling to
`poll_max_ms` (2000) while nothing changes."""
import json, os, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
from common import cpu_seconds, free_port, machine

program = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
JOBS = int(sys.argv[3]) if len(sys.argv) > 3 else 100
root = Path(tempfile.mkdtemp(prefix="bench-providers-"))
os.chmod(root, 0o755)
repo = Path(__file__).resolve().parent.parent
said = subprocess.run(["bash", str(repo / "tests/slurm/start.sh"), str(root / "slurm"), str(free_port())], check=True, capture_output=True, text=True).stdout
env_of = dict(l.split("=", 1) for l in said.splitlines() if "=" in l)
slurm_env = dict(os.environ, SLURM_CONF=str(root / "slurm/slurm.conf"))
work = root / "work"
work.mkdir(mode=0o755)
token = root / "slurm.jwt"
token.write_text(env_of["SLURM_JWT_ROOT"])
token.chmod(0o600)
state = root / "state"
config = root / "gantry.toml"
config.write_text(f'[providers.slurm]\nplugin = "provider-slurm"\nbase_url = "{env_of["SLURMRESTD_URL"]}"\ntoken_file = "{token}"\npoll_ms = 200\npoll_max_ms = 2000\n[providers.slurm.options]\npartition = "debug"\n')
genv = dict(os.environ, GANTRY_STATE_DIR=str(state), GANTRY_NVML_LIBRARY="/nonexistent/libnvidia-ml.so.1")
daemon = subprocess.Popen([program, "--config", str(config), "serve", "--listen", "127.0.0.1:0"], env=genv, stdout=subprocess.DEVNULL, stderr=open(root / "daemon.log", "w"))
for _ in range(1000):
    info = state / "daemon.json"
    if info.exists() and json.loads(info.read_text() or "{}").get("url"):
        break
    time.sleep(0.05)
url = json.loads((state / "daemon.json").read_text())["url"]
auth = {"Authorization": "Bearer " + (state / "local.token").read_text().strip(), "Content-Type": "application/json"}


def api(method, path, body=None):
    request = urllib.request.Request(url + path, method=method, headers=auth, data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or "null")


def wait_for(path, limit=120):
    deadline = time.time() + limit
    while not path.exists() or not path.read_text().strip():
        if time.time() > deadline:
            sys.exit(f"{path} never appeared")
        time.sleep(0.01)
    return float(path.read_text())


def through_gantry(i):
    marker = work / f"g{i}"
    began = time.time()
    api("POST", "/api/v1/jobs", {"commands": [f"date +%s.%N > {marker}"], "provider": "slurm", "cwd": str(work)})
    return wait_for(marker) - began


def through_sbatch(i):
    marker = work / f"s{i}"
    began = time.time()
    subprocess.run(["sbatch", "--quiet", "-p", "debug", "-D", str(work), "-o", "/dev/null", "--wrap", f"date +%s.%N > {marker}"], env=slurm_env, check=True)
    return wait_for(marker) - began


def summary(seconds):
    seconds = sorted(seconds)
    return f"median {seconds[len(seconds) // 2]:.3f} s, min {seconds[0]:.3f} s, max {seconds[-1]:.3f} s"


try:
    rows = {}
    for name, run in (("gantry --provider slurm", through_gantry), ("sbatch", through_sbatch)):
        rows[name] = [run(i) for i in range(RUNS)]
    print(f"machine: {machine()}; {RUNS} trivial jobs each, one at a time")
    for name, seconds in rows.items():
        print(f"  submit → command runs, {name}: {summary(seconds)}")

    # JOBS jobs in flight: each sleeps, so the daemon only polls.
    before_calls = sum(p["calls"] for p in api("GET", "/api/v1/providers"))
    api("POST", "/api/v1/jobs", {"jobs": [{"commands": ["sleep 120"], "provider": "slurm", "cwd": str(work)} for _ in range(JOBS)]})
    time.sleep(20)  # submitted, and the polls settled at poll_max_ms
    calls0, cpu0, t0 = sum(p["calls"] for p in api("GET", "/api/v1/providers")), cpu_seconds([daemon.pid]), time.time()
    time.sleep(30)
    calls1, cpu1, t1 = sum(p["calls"] for p in api("GET", "/api/v1/providers")), cpu_seconds([daemon.pid]), time.time()
    print(f"  {JOBS} jobs in flight (submitted with {calls0 - before_calls} calls): {(calls1 - calls0) / (t1 - t0):.1f} provider calls/s, daemon CPU {100 * (cpu1 - cpu0) / (t1 - t0):.1f} % of one core")
finally:
    subprocess.run(["scancel", "--full", "--user", "root"], env=slurm_env)
    time.sleep(0.5)
    daemon.terminate()
    daemon.wait(timeout=30)
    for pid_file in ["run/slurmrestd.pid", "run/slurmd.pid", "run/slurmctld.pid", "munge/munged.pid"]:
        try:
            os.kill(int((root / "slurm" / pid_file).read_text()), 15)
        except (OSError, ValueError):
            pass
