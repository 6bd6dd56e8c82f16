#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's packages (slurm-wlm, munge):
# munged, slurmctld and slurmd on this host, one partition `debug` holding every CPU.
# For trying the array job in deploy/slurm/sweep-array.sh, and for CI (.ci/run), where
# sim/tests/slurm.rs submits a sweep to it.
#
# Usage (as root): deploy/slurm/local-cluster.sh [--install]
#   --install  apt-get install slurm-wlm and munge first if slurmctld is not there.
# Idempotent: it writes the config, then starts only the daemons that are not already
# answering, and waits until the node takes jobs. Run it again after a reboot, or in every
# CI run (a session's daemons end with the session).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "local-cluster.sh: run as root (it writes /etc/slurm and starts daemons)" >&2
  exit 1
fi
if [ "${1:-}" = "--install" ] && ! command -v slurmctld >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
for tool in munged mungekey slurmctld slurmd sbatch sinfo scontrol; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "local-cluster.sh: $tool is not installed (apt-get install slurm-wlm munge, or pass --install)" >&2
    exit 1
  fi
done

host=$(hostname -s)
cpus=$(nproc)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge

# munge: a key, and the daemon (run as the munge user, as Debian's unit does).
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null || {
    echo "local-cluster.sh: munged does not answer" >&2
    exit 1
  }
fi

conf=$(cat <<CONF
# Written by deploy/slurm/local-cluster.sh: a one-node cluster on $host.
ClusterName=strata
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MaxArraySize=10001
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  changed=1
fi

if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then
  slurmctld
  for _ in $(seq 100); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.2
  done
elif [ "$changed" = 1 ]; then
  scontrol reconfigure
fi
scontrol ping | grep -q 'is UP' || {
  echo "local-cluster.sh: slurmctld did not start; see /var/log/slurm/slurmctld.log" >&2
  tail -20 /var/log/slurm/slurmctld.log >&2 || true
  exit 1
}
# A pid file left by a daemon that has ended (the session that started it stopped) may
# name another process by now: check the name too.
if [ "$(ps -o comm= -p "$(cat /run/slurmd.pid 2>/dev/null || echo 0)" 2>/dev/null)" != slurmd ]; then
  slurmd
fi

# Wait for the node to register and take jobs (a node left down by an earlier run is
# resumed).
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle|mixed|allocated|completing) ;;
  *)
    echo "local-cluster.sh: node $host is '$state', not taking jobs; see /var/log/slurm/slurmd.log" >&2
    tail -20 /var/log/slurm/slurmd.log >&2 || true
    exit 1
    ;;
esac
echo "slurm: one-node cluster up on $host ($cpus CPUs, partition debug)"
