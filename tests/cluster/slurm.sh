#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the workflow's cluster tests (make test-slurm).
#
#   tests/cluster/slurm.sh up DIR     install slurm-wlm + munge where missing (apt, root), write DIR/slurm.conf
#                                     for this machine's cores and memory, start munged, slurmctld and slurmd
#                                     (state, logs, sockets and PID files all under DIR), wait until the node
#                                     is idle; then `export SLURM_CONF=DIR/slurm.conf` points sbatch, squeue,
#                                     scancel at it
#   tests/cluster/slurm.sh down DIR   stop what `up` started, by the PIDs it recorded, and wait for them
#   tests/cluster/slurm.sh can-run    exit 0 when `up` can work here (Linux, root, SLURM and munge installed
#                                     or apt able to install them), else print why and exit 1
#
# State, logs, sockets, PID files and the munge key live under DIR; the packages and one file outside it:
# the config is also installed at SLURM's default path, /etc/slurm/slurm.conf (and removed by `down`),
# because snakemake-executor-plugin-slurm-jobstep (0.6) strips SLURM_CONF from the environment of the
# `srun` that starts each job inside its allocation, so a config elsewhere is not found there. `up`
# refuses when /etc/slurm/slurm.conf exists and is not its own (a real cluster on this machine is left
# alone; the ports below are not SLURM's defaults either). Accounting is off (no slurmdbd): jobs are
# tracked with squeue, which MinJobAge keeps answering for 10 minutes after a job ends (the profile sets
# the plugin's status command to squeue).
set -euo pipefail

CTLD_PORT=${TINLAB_SLURMCTLD_PORT:-16817}
SLURMD_PORT=${TINLAB_SLURMD_PORT:-16818}
PACKAGES=(slurm-wlm munge)
SYSTEM_CONF=/etc/slurm/slurm.conf
MARK="# tinlab test cluster:"

die() { echo "slurm.sh: $*" >&2; exit 1; }

missing() {
    local cmd
    for cmd in munged slurmctld slurmd sbatch squeue scancel sinfo; do
        command -v "$cmd" >/dev/null 2>&1 || { echo "$cmd"; return 0; }
    done
    return 1
}

can_run() {
    [ "$(uname -s)" = Linux ] || { echo "not Linux"; return 1; }
    [ "$(id -u)" = 0 ] || { echo "not root (slurmd and munged run as root here)"; return 1; }
    if cmd=$(missing); then
        command -v apt-get >/dev/null 2>&1 || { echo "$cmd is missing and there is no apt-get to install ${PACKAGES[*]}"; return 1; }
        timeout 300 apt-get update -qq >/dev/null 2>&1 || { echo "$cmd is missing and apt-get update fails (no package registry reachable)"; return 1; }
    fi
    return 0
}

install() {
    local cmd
    cmd=$(missing) || return 0
    echo "slurm.sh: $cmd missing: apt-get install ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed (no package registry reachable?)"
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || die "apt-get install ${PACKAGES[*]} failed"
    cmd=$(missing) && die "$cmd still missing after installing ${PACKAGES[*]}"
    return 0
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

up() {
    local dir=$1
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -e "$dir/pids" ] && die "$dir/pids exists: a cluster from an earlier 'up' may still run (slurm.sh down $dir)"
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 700 "$dir/munge"
    # The node as slurmd sees it (cores, memory), less 1 GiB of memory for the daemons and the OS.
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    cat > "$dir/slurm.conf" <<EOF
$MARK $dir ($(date -u +%FT%TZ)): a one-node test cluster; 'tests/cluster/slurm.sh down $dir' stops it.
ClusterName=tinlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# No cgroups in containers: Linux process tracking, no task binding, no accounting database.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue for 10 minutes: the plugin's squeue status needs them.
MinJobAge=600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -e "$SYSTEM_CONF" ] && ! head -1 "$SYSTEM_CONF" | grep -q "^$MARK"; then
        die "$SYSTEM_CONF exists and was not written by this script: not replacing a real cluster's config"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    cp "$dir/slurm.conf" "$SYSTEM_CONF"
    export SLURM_CONF=$dir/slurm.conf
    : > "$dir/pids"
    munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" --force 2>>"$dir/munge/munged.log" \
        || die "munged did not start (see $dir/munge/munged.log)"
    wait_for 10 munged test -s "$dir/munge/munged.pid" || die "munged wrote no PID file ($dir/munge/munged.log)"
    echo "munged $(cat "$dir/munge/munged.pid")" >> "$dir/pids"
    slurmctld -f "$dir/slurm.conf" || die "slurmctld did not start (see $dir/slurmctld.log)"
    wait_for 15 slurmctld test -s "$dir/slurmctld.pid" || die "slurmctld wrote no PID file ($dir/slurmctld.log)"
    echo "slurmctld $(cat "$dir/slurmctld.pid")" >> "$dir/pids"
    slurmd -f "$dir/slurm.conf" || die "slurmd did not start (see $dir/slurmd.log)"
    wait_for 15 slurmd test -s "$dir/slurmd.pid" || die "slurmd wrote no PID file ($dir/slurmd.log)"
    echo "slurmd $(cat "$dir/slurmd.pid")" >> "$dir/pids"
    idle() { sinfo -h -N -o %t | grep -qx idle; }
    wait_for 60 "node idle" idle || die "node $host not idle after 60 s: $(sinfo -h -N -o '%N %t %E' 2>&1) (see $dir/slurmctld.log, $dir/slurmd.log)"
    echo "slurm.sh: cluster up: node $host, $cpus CPUs, $mem MB; export SLURM_CONF=$dir/slurm.conf"
}

down() {
    local dir=$1 name pid
    # The reverse order of start: slurmd, slurmctld, munged.
    [ -e "$dir/pids" ] && tac "$dir/pids" | while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait_for 20 "$name exit" bash -c "! kill -0 $pid 2>/dev/null" || { echo "slurm.sh: $name ($pid) ignored TERM: KILL"; kill -KILL "$pid" 2>/dev/null || true; }
        fi
    done
    rm -f "$dir/pids"
    if [ -e "$SYSTEM_CONF" ] && head -1 "$SYSTEM_CONF" | grep -q "^$MARK $dir "; then
        rm -f "$SYSTEM_CONF"
    fi
    echo "slurm.sh: cluster in $dir stopped"
}

case "${1:-}" in
    up) [ $# -eq 2 ] || die "usage: slurm.sh up DIR"; up "$2" ;;
    down) [ $# -eq 2 ] || die "usage: slurm.sh down DIR"; down "$2" ;;
    can-run) can_run ;;
    *) die "usage: slurm.sh up DIR | down DIR | can-run" ;;
esac
