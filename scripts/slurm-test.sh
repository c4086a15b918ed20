#!/usr/bin/env bash
# A real single-machine Slurm for the Slurm test (issue 12 §3), never part of the default set-up:
#   scripts/slurm-test.sh up     installs Debian's slurmctld, slurmd, slurm-client and munge when missing,
#                                writes a one-node slurm.conf (this machine, all its CPUs, partition
#                                `test`), starts munged, slurmctld and slurmd, and waits for the node
#                                to be idle. Exit 2, with the reason, where that cannot be done (not
#                                root, no apt); exit 1 when a daemon does not come up (its log tail shown).
#   scripts/slurm-test.sh down   stops the daemons started by `up`.
# Everything lives under /tmp/alphaedit-slurm (config, spool, state, logs).
set -uo pipefail
cmd=${1:-}
base=/tmp/alphaedit-slurm
fail() { echo "slurm-test: $*" >&2; exit "${code:-1}"; }
conf=$base/slurm.conf
case "$cmd" in
  up)
    [ "$(id -u)" = 0 ] || code=2 fail "needs root to run slurmd (this is uid $(id -u))"
    # The daemons must not inherit our caller's descriptors beyond stdio: a parent that waits for one
    # of them to close (Foundation's Process watches a socket to learn that its child exited) would wait
    # as long as the daemons live.
    for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
    need=()
    for p in slurmctld slurmd slurm-client munge; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
    if [ ${#need[@]} -gt 0 ]; then
      command -v apt-get >/dev/null || code=2 fail "apt-get is missing: cannot install ${need[*]}"
      echo "slurm-test: installing ${need[*]}" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null 2>&1 \
        || code=2 fail "apt-get install ${need[*]} failed (no network to Debian's mirrors?)"
    fi
    "$0" down 2>/dev/null
    mkdir -p $base/spool $base/state $base/log /run/munge /var/log/munge /var/lib/munge
    # munge: a key of our own, the daemon as root (--force: this is a throwaway test daemon).
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
    chmod 0400 /etc/munge/munge.key
    munged --force --socket=/run/munge/munge.socket.2 --pid-file=$base/munged.pid >$base/log/munged.out 2>&1 \
      || fail "munged did not start: $(tail -3 $base/log/munged.out)"
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > $conf <<EOF
ClusterName=alphaedit-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldPidFile=$base/slurmctld.pid
SlurmdPidFile=$base/slurmd.pid
SlurmdSpoolDir=$base/spool
StateSaveLocation=$base/state
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    export SLURM_CONF=$conf
    slurmctld -f $conf -c >$base/log/slurmctld.out 2>&1 || fail "slurmctld did not start: $(tail -5 $base/log/slurmctld.log $base/log/slurmctld.out 2>/dev/null)"
    slurmd -f $conf -c >$base/log/slurmd.out 2>&1 || fail "slurmd did not start: $(tail -5 $base/log/slurmd.log $base/log/slurmd.out 2>/dev/null)"
    for _ in $(seq 60); do
      state=$(sinfo -h -o %t 2>/dev/null | head -1)
      [ "$state" = idle ] && { echo "slurm-test: node $host idle ($cpus CPUs); SLURM_CONF=$conf" >&2; exit 0; }
      sleep 0.5
    done
    fail "the node did not become idle (state '${state:-none}'): $(tail -5 $base/log/slurmd.log 2>/dev/null)" ;;
  down)
    for d in slurmd slurmctld munged; do
      [ -f $base/$d.pid ] && kill "$(cat $base/$d.pid)" 2>/dev/null
    done
    sleep 0.5
    rm -f $base/*.pid
    rm -rf $base/state $base/spool ;;
  *) fail "usage: scripts/slurm-test.sh up|down" ;;
esac
