#!/usr/bin/env bash
# Start a single-node SLURM cluster on this Debian machine (for trying lorakit's cluster path on one box, and for
# the tests): munge for authentication, slurmctld and slurmd as daemons, one partition "debug" holding this node
# with all its cores and memory (and its NVIDIA GPUs as gres/gpu, where nvidia-smi lists any). Idempotent: a
# running cluster is left as it is.
#
# Usage (as root):
#     bash scripts/start_slurm.sh            # installs slurm-wlm and munge with apt-get when they are missing
#     sinfo; squeue                          # the node is idle once the script returns
#
# proctrack/linuxproc and task/none: no cgroups or systemd needed (containers included). State and logs are kept
# in /var/spool/slurm-lorakit and /var/log/slurm-lorakit. A real cluster needs none of this: see the README's
# "On a SLURM cluster".
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "start_slurm.sh: run as root (it installs packages and starts daemons)" >&2
  exit 2
fi
if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "SLURM is running: $(sinfo -h -o '%P %D %T' | head -1)"
  exit 0
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/dev/null
fi

node=$(hostname -s)
cpus=$(nproc --all)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))   # MB, less 1 GB for the system
gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU ' || true)
state=/var/spool/slurm-lorakit
logs=/var/log/slurm-lorakit
mkdir -p "$state/ctld" "$state/d" "$logs" /etc/slurm /run/munge /var/lib/munge /var/log/munge

gres=""
if [ "$gpus" -gt 0 ]; then
  gres="Gres=gpu:$gpus"
  : > /etc/slurm/gres.conf
  for i in $(seq 0 $((gpus - 1))); do echo "NodeName=$node Name=gpu File=/dev/nvidia$i" >> /etc/slurm/gres.conf; done
fi
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=lorakit
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=5
MpiDefault=none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
${gres:+GresTypes=gpu}
NodeName=$node CPUs=$cpus RealMemory=$memory $gres State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "SLURM is running: $(sinfo -h -o '%P %D %T %c CPUs')"
    exit 0
  fi
  scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "start_slurm.sh: the node did not come up; see $logs/slurmctld.log and $logs/slurmd.log" >&2
sinfo -R >&2 || true
exit 1
