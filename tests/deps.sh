#!/usr/bin/env bash
# What the tests need beyond Rust: the tools the shared-server tests use to make throwaway Unix
# users and act as them, openssl for the TLS tests' certificates, iproute2 for the partition
# test's network namespaces, the browser the dashboard tests drive (Chromium and its WebDriver,
# whose versions Debian's packages keep in step), and the single-node Slurm the provider-slurm
# tests hand jobs to (munge, slurmctld, slurmd, slurmrestd with its JWT plugin; curl to wait for it),
# and Node.js with npm, which install jco for the JavaScript policy test. Installs what is missing where it can
# (root with apt, as in CI); elsewhere the tests that need a tool fail and name the package.
set -euo pipefail
missing=()
for pair in useradd:passwd userdel:passwd groupadd:passwd setpriv:util-linux prlimit:util-linux getent:libc-bin mkfifo:coreutils openssl:openssl ip:iproute2 chromium:chromium chromedriver:chromium-driver munged:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client slurmrestd:slurmrestd curl:curl node:nodejs npm:npm; do
  tool=${pair%%:*} package=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || missing+=("$package")
done
[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so ] || [ -e /usr/lib/aarch64-linux-gnu/slurm-wlm/auth_jwt.so ] || missing+=(slurm-wlm-jwt-plugin)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u)
else
  echo "tests/deps.sh: missing ${missing[*]}; the tests that need them will fail until they are installed (as root: apt-get install -y ${missing[*]})" >&2
fi
