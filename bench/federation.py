#!/usr/bin/env python3
"""A federation master under load: one real agent (a release daemon on 8 simulated H100s,
reporting every second) and AGENTS-1 synthetic ones posting the same report with their own
tokens every second. Prints the master's CPU and memory, the bytes of one report, the real
agent's CPU per report, and the time from a job's start on the agent to the `node` event on the
master's event stream (p50, p99 over JOBS jobs). With --tls the master serves HTTPS with a
certificate of a CA made here by openssl, which the agents trust; the synthetic agents make a
new connection (a full handshake) for every report, the real one keeps its connection. Results
go to docs/BENCHMARKS.md.

    python3 bench/federation.py [AGENTS] [JOBS] [--tls]
"""
import json, os, shutil, signal, ssl, subprocess, sys, tempfile, threading, time, urllib.request

from common import cpu_seconds, free_port, kill_shims, machine, rss_mib

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
TLS = "--tls" in sys.argv[1:]
AGENTS = int(ARGS[0]) if len(ARGS) > 0 else 50
JOBS = int(ARGS[1]) if len(ARGS) > 1 else 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = f"{ROOT}/target/release/gantry"
CONTEXT = None


def call(url, method="GET", body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30, context=CONTEXT if url.startswith("https://") else None) as r:
        text = r.read()
        return json.loads(text) if text else None


def lab_ca(top):
    """A CA and a certificate it signed for 127.0.0.1; the [server] section that serves it."""
    d = f"{top}/tls"
    os.makedirs(d)
    open(f"{d}/ca.cnf", "w").write("[req]\ndistinguished_name = dn\nx509_extensions = ca\nprompt = no\n[dn]\nCN = bench CA\n[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n")
    open(f"{d}/leaf.cnf", "w").write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = 127.0.0.1\n")
    open(f"{d}/leaf.ext", "w").write("basicConstraints = CA:FALSE\nsubjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (["req", "-x509", "-config", "ca.cnf", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1"],
                 ["req", "-new", "-config", "leaf.cnf", *ec, "-keyout", "key.pem", "-out", "leaf.csr"],
                 ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "leaf.ext", "-out", "cert.pem"]):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    return f"{d}/ca.pem", f"[server]\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n"


def daemon(state, port, config, simulate):
    os.makedirs(state, exist_ok=True)
    open(f"{state}/gantry.toml", "w").write(config)
    env = dict(os.environ, GANTRY_STATE_DIR=state, GANTRY_NVML_LIBRARY="/nonexistent")
    proc = subprocess.Popen([BIN, "--config", f"{state}/gantry.toml", "serve", "--listen", f"127.0.0.1:{port}", "--simulate", simulate], env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    while not os.path.exists(f"{state}/daemon.json"):
        time.sleep(0.1)
    time.sleep(0.2)
    url = json.load(open(f"{state}/daemon.json"))["url"]
    return proc, url, open(f"{state}/local.token").read().strip()


def main():
    global CONTEXT
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    top = tempfile.mkdtemp()
    procs = []
    try:
        server, trust = "", ""
        if TLS:
            ca, server = lab_ca(top)
            CONTEXT = ssl.create_default_context(cafile=ca)
            trust = f"ca_cert = \"{ca}\"\n"
        master, murl, mtoken = daemon(f"{top}/master", free_port(), f"{server}[federation]\noffline_after_s = 15\n", "1")
        procs.append(master)
        tokens = {f"n{i:02d}": call(f"{murl}/api/v1/nodes", "POST", {"name": f"n{i:02d}"}, mtoken)["token"] for i in range(AGENTS)}
        agent, aurl, atoken = daemon(f"{top}/agent", free_port(),
                                     f"[gpu]\nsample_interval_ms = 1000\n[federation]\nmaster = \"{murl}\"\nnode_name = \"n00\"\ntoken = \"{tokens['n00']}\"\nreport_interval_s = 1\n{trust}", "8xH100")
        procs.append(agent)
        while (call(f"{murl}/api/v1/nodes/n00", token=mtoken) or {}).get("status") != "online":
            time.sleep(0.1)
        template = call(f"{murl}/api/v1/nodes/n00", token=mtoken)["report"]
        size = len(json.dumps(template).encode())
        stop = threading.Event()

        def synthetic(name, token):
            while not stop.is_set():
                report = dict(template, seq=int(time.time() * 1e6))
                try:
                    call(f"{murl}/api/v1/nodes/{name}/report", "POST", report, token)
                except OSError:
                    pass
                stop.wait(1.0)

        threads = [threading.Thread(target=synthetic, args=(n, t), daemon=True) for n, t in tokens.items() if n != "n00"]
        for t in threads:
            t.start()
        time.sleep(3)
        window = 30
        m0, a0 = cpu_seconds([master.pid]), cpu_seconds([agent.pid])
        time.sleep(window)
        master_cpu, agent_cpu = (cpu_seconds([master.pid]) - m0) / window, (cpu_seconds([agent.pid]) - a0) / window
        online = sum(1 for n in call(f"{murl}/api/v1/nodes", token=mtoken) if n["status"] == "online")

        # The master's event stream, read on a thread: when each `node` event of n00 arrived.
        seen = []
        def listen():
            req = urllib.request.Request(f"{murl}/api/v1/events", headers={"Authorization": f"Bearer {mtoken}"})
            with urllib.request.urlopen(req, timeout=600, context=CONTEXT if murl.startswith("https://") else None) as stream:
                kind = None
                for raw in stream:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind == "node":
                        view = json.loads(line[5:])
                        if view["name"] == "n00":
                            seen.append((time.time() * 1000, view["report"]["jobs"]["running"]))
                    if stop.is_set():
                        return
        threading.Thread(target=listen, daemon=True).start()
        time.sleep(1)
        delays = []
        for _ in range(JOBS):
            job = call(f"{aurl}/api/v1/jobs", "POST", {"commands": ["sleep 0.5"]}, atoken)["ids"][0]
            while True:
                state = call(f"{aurl}/api/v1/jobs/{job}", token=atoken)
                if state["attempts"]:
                    break
                time.sleep(0.02)
            started = state["attempts"][0]["started_ms"]
            deadline = time.time() + 10
            while time.time() < deadline and not any(at >= started and running >= 1 for at, running in seen):
                time.sleep(0.005)
            arrived = next((at for at, running in seen if at >= started and running >= 1), None)
            if arrived is not None:
                delays.append(arrived - started)
            while call(f"{aurl}/api/v1/jobs/{job}", token=atoken)["state"] == "running":
                time.sleep(0.05)
            time.sleep(0.3)
            seen.clear()
        stop.set()
        delays.sort()
        pick = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))]
        print(f"machine: {machine()}; master over {'HTTPS' if TLS else 'HTTP'}")
        print(f"{AGENTS} agents reporting every second ({online} online); one report (8 GPUs): {size} bytes of JSON")
        print(f"master: {100 * master_cpu:.1f} % of a core, RSS {rss_mib(master.pid):.0f} MiB; the real agent: {100 * agent_cpu:.2f} % of a core ({1000 * agent_cpu:.1f} ms of CPU per report and its sampling)")
        print(f"job start on the agent → node event on the master's stream: p50 {pick(0.5):.0f} ms, p99 {pick(0.99):.0f} ms, max {delays[-1]:.0f} ms over {len(delays)} of {JOBS} jobs")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait()
        kill_shims(top)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
