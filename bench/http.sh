#!/usr/bin/env bash
# HTTP API load: wrk on loopback, 64 connections for 10 s, against read endpoints of a release
# daemon on 8 simulated GPUs while it schedules jobs (2,000 short jobs in 16 queues).
# Needs wrk (`apt-get install wrk`). Prints wrk's report per endpoint; results go to
# docs/BENCHMARKS.md with the machine. `bench/http.sh PATH…` measures only those endpoints.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
state=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; python3 bench/common.py kill-shims "$state"; rm -rf "$state"' EXIT
printf '[scheduler]\nallow_sharing = true\n' > "$state/gantry.toml"
GANTRY_STATE_DIR=$state GANTRY_NVML_LIBRARY=/nonexistent target/release/gantry --config "$state/gantry.toml" \
    serve --listen 127.0.0.1:0 --simulate 8 2>"$state/daemon.log" &
daemon=$!
until [ -s "$state/daemon.json" ]; do sleep 0.1; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$state/daemon.json")
# Over TCP the daemon knows its user by the token only that user can read.
auth="Authorization: Bearer $(cat "$state/local.token")"
python3 - "$url" "$auth" <<'PY'
import json, sys, urllib.request
jobs = [{"commands": ["sleep 0.2"], "queue": f"q{i % 16}"} for i in range(2000)]
name, value = sys.argv[2].split(": ", 1)
req = urllib.request.Request(sys.argv[1] + "/api/v1/jobs", data=json.dumps({"jobs": jobs}).encode(), headers={"Content-Type": "application/json", name: value})
urllib.request.urlopen(req).read()
PY
echo "machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
paths=("$@")
[ ${#paths[@]} -gt 0 ] || paths=(/api/v1/node /api/gpu /api/v1/gpu/status /metrics)
for path in "${paths[@]}"; do
    echo "== GET $path (jobs running: $(curl -s -H "$auth" "$url/api/v1/jobs?state=running" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'))"
    wrk -t2 -c64 -d10s --latency -H "$auth" "$url$path" | grep -E 'Requests/sec|Latency|50%|99%|requests in'
done
