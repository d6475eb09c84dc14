#!/usr/bin/env python3
"""The dashboard's cost, measured in headless Chromium (Debian's chromium and chromium-driver):
a release daemon on 8 simulated H100s whose GPUs change every second (8 queues of 1 s jobs),
the GPUs page open in PAGES tabs for WINDOW seconds. Prints what the page's bodies weigh as sent
(gzipped), when it first drew its GPU cards, the CPU the browser used, and the
daemon's CPU and memory with and without the pages. Results go to docs/BENCHMARKS.md.

    python3 bench/dashboard.py [PAGES] [WINDOW]
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

from common import cpu_seconds, free_port, kill_shims, machine, rss_mib

PAGES = int(sys.argv[1]) if len(sys.argv) > 1 else 1
WINDOW = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def call(url, method="GET", body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")




def in_session(sid):
    """Every process of session `sid` (chromedriver's: it and the browser it starts)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[3]) == sid:
                    out.append(int(entry))
            except OSError:
                pass
    return out




def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    state = tempfile.mkdtemp()
    port = free_port()
    env = dict(os.environ, GANTRY_STATE_DIR=state, GANTRY_NVML_LIBRARY="/nonexistent")
    open(f"{state}/gantry.toml", "w").write("[gpu]\nsample_interval_ms = 1000\n")
    daemon = subprocess.Popen([f"{ROOT}/target/release/gantry", "--config", f"{state}/gantry.toml", "serve", "--listen", f"127.0.0.1:{port}", "--simulate", "8xH100"],
                              env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    driver = None
    try:
        while not os.path.exists(f"{state}/local.token"):
            time.sleep(0.1)
        time.sleep(0.5)
        token = open(f"{state}/local.token").read().strip()
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {token}"}
        jobs = [{"commands": ["sleep 1"], "queue": f"q{i % 8}", "memory_mib": 20000} for i in range(8 * 400)]
        call(f"{url}/api/v1/jobs", "POST", {"jobs": jobs}, auth)
        time.sleep(3)
        idle_cpu = cpu_seconds([daemon.pid])
        time.sleep(WINDOW / 2)
        daemon_alone = (cpu_seconds([daemon.pid]) - idle_cpu) / (WINDOW / 2)
        rss_alone = rss_mib(daemon.pid)

        dport = free_port()
        driver = subprocess.Popen([shutil.which("chromedriver"), f"--port={dport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wd = f"http://127.0.0.1:{dport}"
        while True:
            try:
                call(f"{wd}/status")
                break
            except OSError:
                time.sleep(0.1)
        profile = tempfile.mkdtemp()
        args = ["--headless=new", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,1000"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
        session = call(f"{wd}/session", "POST", {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"binary": shutil.which("chromium"), "args": args}}}})["value"]["sessionId"]
        s = f"{wd}/session/{session}"
        js = lambda script: call(f"{s}/execute/sync", "POST", {"script": script, "args": []})["value"]
        # Log in once (the cookie serves every tab), then measure a fresh load of the GPUs page.
        call(f"{s}/url", "POST", {"url": f"{url}/ui/#token={token}"})
        while js("return document.getElementById('live').textContent") != "live":
            time.sleep(0.1)
        call(f"{s}/url", "POST", {"url": "about:blank"})
        call(f"{s}/url", "POST", {"url": f"{url}/ui/#/gpus"})
        while not js("return performance.getEntriesByName('gantry:gpus-drawn').length"):
            time.sleep(0.1)
        time.sleep(1)
        drawn_ms = js("return performance.getEntriesByName('gantry:gpus-drawn')[0].startTime")
        # The bodies as they travel (gzip), whether or not this load found them cached.
        transferred = js("return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((s, e) => s + e.encodedBodySize, 0)")
        requests = js("return performance.getEntriesByType('resource').length + 1")
        for _ in range(PAGES - 1):
            call(f"{s}/window/new", "POST", {"type": "tab"})
            handle = call(f"{s}/window/handles")["value"][-1]
            call(f"{s}/window", "POST", {"handle": handle})
            call(f"{s}/url", "POST", {"url": f"{url}/ui/#/gpus"})
        time.sleep(3)
        browser = [p for p in in_session(driver.pid) if p != driver.pid]
        before_browser, before_daemon = cpu_seconds(browser), cpu_seconds([daemon.pid])
        time.sleep(WINDOW)
        browser_cpu = (cpu_seconds(browser) - before_browser) / WINDOW
        daemon_cpu = (cpu_seconds([daemon.pid]) - before_daemon) / WINDOW
        events = call(f"{url}/api/v1/status", headers=auth)["counts"]
        print(f"machine: {machine()}; chromium {subprocess.run([shutil.which('chromium'), '--version'], capture_output=True, text=True).stdout.strip()}")
        print(f"GPUs page, a cold load: {transferred / 1024:.1f} KiB of bodies as sent (gzip) in {requests} requests; GPU cards drawn {drawn_ms:.0f} ms after navigation began")
        print(f"{PAGES} page(s) open for {WINDOW:.0f} s, 8 GPUs changing every second ({events['succeeded']} jobs done so far):")
        print(f"  browser (every Chromium process): {100 * browser_cpu:.1f} % of a core, {100 * browser_cpu / PAGES:.1f} % per page")
        print(f"  daemon: {100 * daemon_cpu:.1f} % of a core with the pages, {100 * daemon_alone:.1f} % without; RSS {rss_mib(daemon.pid):.0f} MiB with, {rss_alone:.0f} MiB without")
    finally:
        if driver:
            os.killpg(driver.pid, signal.SIGKILL)
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait()
        kill_shims(state)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
