#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for tests/test_slurm.py: localhost only, CPU-only, no cgroups,
# no accounting database, daemons running as root, all configuration, state and logs under one folder.
#
#   bash .ci/slurm-up.sh [DIR]       # default DIR: /tmp/rharm-slurm; prints the line `export SLURM_CONF=DIR/slurm.conf`
#   bash .ci/slurm-down.sh [DIR]     # stops what this script started and removes DIR
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing (needs root). Exits non-zero, with the
# reason on stderr, when the cluster does not come up within a minute; the caller then skips the SLURM test.
set -euo pipefail
DIR=${1:-/tmp/rharm-slurm}
say() { echo "[slurm-up] $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
  say "installing Debian packages slurmctld slurmd slurm-client munge"
  if [ "$(id -u)" != 0 ]; then say "not root: cannot install SLURM"; exit 1; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
    >/dev/null) || { say "apt-get install failed"; exit 1; }
fi
if [ "$(id -u)" != 0 ]; then say "the test cluster runs its daemons as root; run this script as root"; exit 1; fi

if [ -e "$DIR/slurmctld.pid" ]; then say "$DIR already holds a cluster; run .ci/slurm-down.sh $DIR first"; exit 1; fi
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"

# munge: the authentication slurm uses between its commands and daemons. Reuse a running munged.
if ! (munge -n </dev/null | unmunge >/dev/null) 2>/dev/null; then
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  runuser -u munge -- /usr/sbin/munged 2>>"$DIR/log/munged.err" || /usr/sbin/munged --force 2>>"$DIR/log/munged.err"
  touch "$DIR/munged.started-by-us"
  for _ in $(seq 20); do (munge -n </dev/null | unmunge >/dev/null) 2>/dev/null && break; sleep 0.5; done
  (munge -n </dev/null | unmunge >/dev/null) 2>/dev/null || { say "munged did not start: $(tail -3 "$DIR/log/munged.err")"; exit 1; }
fi

HOST=$(hostname -s)
CPUS=$(nproc)
cat >"$DIR/slurm.conf" <<EOF
# single-node test cluster written by .ci/slurm-up.sh
ClusterName=rharmci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again after cred_expire + 1 s (default 120 s): short, so a preempted job resumes quickly
AuthInfo=cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
: >"$DIR/plugstack.conf"
export SLURM_CONF=$DIR/slurm.conf

slurmctld -c -f "$SLURM_CONF" || { say "slurmctld failed: $(tail -5 "$DIR/log/slurmctld.log" 2>/dev/null)"; exit 1; }
slurmd -f "$SLURM_CONF" || { say "slurmd failed: $(tail -5 "$DIR/log/slurmd.log" 2>/dev/null)"; exit 1; }

for _ in $(seq 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  case "$state" in idle*|mixed*|allocated*) break ;; esac
  sleep 1
done
case "${state:-}" in
  idle*|mixed*|allocated*) ;;
  *) say "node not ready after 60 s (state '${state:-none}'); slurmctld log: $(tail -5 "$DIR/log/slurmctld.log" 2>/dev/null)"
     exit 1 ;;
esac
say "cluster up: node $HOST, $CPUS CPUs, state $state"
echo "export SLURM_CONF=$SLURM_CONF"
