#!/usr/bin/env bash
# A single-node Slurm on 127.0.0.1 for the provider tests: munged, slurmctld, slurmd with four
# GPUs (character devices in a folder of its own, listed in gres.conf: slurmd drops GPUs whose
# files do not exist) and slurmrestd as nobody with JWT auth. Everything lives under DIR; prints
# the shell assignments a test reads (SLURM_CONF, SLURMRESTD_URL, SLURM_JWT_ROOT). Needs root.
# Usage: start.sh DIR PORT
set -euo pipefail
dir=$1 port=$2
for tool in munged slurmctld slurmd slurmrestd scontrol; do
  command -v "$tool" >/dev/null || { echo "tests/slurm/start.sh: $tool is missing (as root: apt-get install -y munge slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin)" >&2; exit 2; }
done
mkdir -p "$dir"/{state,spool,log,dev,munge,run}
chmod 0755 "$dir" "$dir/state"
for n in 0 1 2 3; do
  [ -e "$dir/dev/nvidia$n" ] || mknod "$dir/dev/nvidia$n" c 195 "$n"
done
host=$(hostname -s)
dd if=/dev/urandom of="$dir/state/jwt.key" bs=32 count=1 status=none
chmod 0600 "$dir/state/jwt.key"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$dir/munge" "$dir/munge/munge.key" 2>/dev/null || true
chmod 0700 "$dir/munge"; chmod 0400 "$dir/munge/munge.key"
cat > "$dir/slurm.conf" <<CONF
ClusterName=gantrytest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$dir/state/jwt.key
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$((port + 1))
SlurmdPort=$((port + 2))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
KillWait=2
InactiveLimit=0
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$dir/gres.conf" <<CONF
Name=gpu File=$dir/dev/nvidia[0-3]
CONF
export SLURM_CONF=$dir/slurm.conf
munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" -f
echo "AuthInfo=socket=$dir/munge/munge.socket" >> "$dir/slurm.conf"
slurmctld -i
slurmd -b
for _ in $(seq 100); do
  scontrol ping >/dev/null 2>&1 && sinfo -h -o %T 2>/dev/null | grep -q idle && break
  sleep 0.1
done
sinfo -h -o %T | grep -q idle || { echo "tests/slurm/start.sh: the node did not come up; see $dir/log" >&2; tail -20 "$dir"/log/*.log >&2; exit 1; }
setpriv --reuid=nobody --regid=nogroup --clear-groups env SLURM_CONF="$SLURM_CONF" SLURM_JWT=daemon \
  slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 "127.0.0.1:$port" >"$dir/log/slurmrestd.log" 2>&1 &
echo $! > "$dir/run/slurmrestd.pid"
token=$(scontrol token username=root lifespan=86400 | sed 's/^SLURM_JWT=//')
for _ in $(seq 100); do
  curl -sf -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $token" "http://127.0.0.1:$port/slurm/v0.0.38/ping" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "SLURM_CONF=$SLURM_CONF"
echo "SLURMRESTD_URL=http://127.0.0.1:$port"
echo "SLURM_JWT_ROOT=$token"
