#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for testing `snakemake --profile slurm`.
#
#   tests/slurm/cluster.sh install            # Debian packages, only when missing
#   tests/slurm/cluster.sh start [--accounting]
#   tests/slurm/cluster.sh status
#   tests/slurm/cluster.sh stop
#
# Why it looks like this: CI machines are Debian bookworm containers where we are
# root but there is no systemd, so package scripts never start a daemon and
# nothing creates /run or /var/spool directories.  We create them, write the
# configuration, start each daemon by hand with setsid, remember its PID in
# $STATE_DIR, and stop exactly those PIDs.  `start` is idempotent: a cluster
# already running in the requested mode is left alone; one in the other mode
# is restarted.
#
# Without --accounting there is no slurmdbd, so `sacct` fails; Snakemake's SLURM
# plugin must then poll with squeue (the profile sets slurm-status-command:
# squeue), and squeue only sees finished jobs for MinJobAge seconds, hence the
# generous MinJobAge below.
#
# Environment: SPECIESGAN_SLURM_STATE (default /run/speciesgan-slurm) holds PIDs,
# logs and the mode; SLURM_CONF_DIR (default /etc/slurm) receives the config so
# that sbatch/squeue find it without SLURM_CONF.

set -euo pipefail

STATE_DIR="${SPECIESGAN_SLURM_STATE:-/run/speciesgan-slurm}"
CONF_DIR="${SLURM_CONF_DIR:-/etc/slurm}"
CLUSTER_NAME="speciesgan"
NODE="$(hostname -s)"
# Jobs stay visible to squeue this long after they end.  The SLURM plugin
# silently switches back to sacct when MinJobAge < 3 x its initial status wait.
MIN_JOB_AGE=900
MAX_TIME="2-00:00:00"
DB_PASSWORD="speciesgan-test-only"
BASE_PACKAGES=(munge slurmctld slurmd slurm-client)
ACCOUNTING_PACKAGES=(slurmdbd mariadb-server)

log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() {
    [[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and starts daemons)"
}

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || echo "$pkg"
    done
}

install_packages() {
    local accounting="$1"
    local wanted=("${BASE_PACKAGES[@]}")
    [[ "$accounting" == 1 ]] && wanted+=("${ACCOUNTING_PACKAGES[@]}")
    local missing
    missing="$(missing_packages "${wanted[@]}")"
    [[ -z "$missing" ]] && return 0
    need_root
    log "installing: $(echo $missing | tr '\n' ' ')"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

pid_of() { cat "$STATE_DIR/$1.pid" 2>/dev/null || true; }

running() { pid_alive "$(pid_of "$1")"; }

make_dirs() {
    mkdir -p "$STATE_DIR" "$CONF_DIR"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    install -d -o slurm -g slurm -m 0755 /run/slurm /var/spool/slurmctld /var/log/slurm
    install -d -m 0755 /var/spool/slurmd
    if [[ -f /etc/munge/munge.key ]]; then
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    else
        install -d -o munge -g munge -m 0700 /etc/munge
        runuser -u munge -- mungekey --create
    fi
}

write_slurm_conf() {
    local accounting="$1"
    local cpus mem_mb
    cpus="$(nproc)"
    # Leave ~10% for the OS and the daemons; a node that claims more than it has is drained.
    mem_mb="$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')"
    {
        echo "# Written by tests/slurm/cluster.sh: one-node test cluster (no systemd, no cgroups)."
        echo "ClusterName=$CLUSTER_NAME"
        echo "SlurmctldHost=$NODE"
        echo "SlurmUser=slurm"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        echo "MpiDefault=none"
        # No cgroup hierarchy we may use in a container: track processes by parentage.
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core_Memory"
        echo "ReturnToService=2"
        echo "MinJobAge=$MIN_JOB_AGE"
        echo "KillWait=10"
        echo "SlurmctldPidFile=/run/slurm/slurmctld.pid"
        echo "SlurmdPidFile=/run/slurm/slurmd.pid"
        echo "SlurmdSpoolDir=/var/spool/slurmd"
        echo "StateSaveLocation=/var/spool/slurmctld"
        echo "SlurmctldLogFile=/var/log/slurm/slurmctld.log"
        echo "SlurmdLogFile=/var/log/slurm/slurmd.log"
        echo "SchedulerType=sched/backfill"
        echo "GresTypes=gpu"
        if [[ "$accounting" == 1 ]]; then
            echo "AccountingStorageType=accounting_storage/slurmdbd"
            echo "AccountingStorageHost=localhost"
            echo "JobAcctGatherType=jobacct_gather/linux"
            echo "JobAcctGatherFrequency=30"
        else
            echo "AccountingStorageType=accounting_storage/none"
            echo "JobAcctGatherType=jobacct_gather/none"
        fi
        echo "NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN"
        echo "PartitionName=cpu Nodes=$NODE Default=YES MaxTime=$MAX_TIME State=UP"
        echo "PartitionName=gpu Nodes=$NODE Default=NO MaxTime=$MAX_TIME State=UP"
    } >"$CONF_DIR/slurm.conf.tmp"
    mv "$CONF_DIR/slurm.conf.tmp" "$CONF_DIR/slurm.conf"
    # A fake GPU: the gres plugin needs a device file and refuses regular files.
    echo "NodeName=$NODE Name=gpu File=/dev/null" >"$CONF_DIR/gres.conf"
    # A cgroup.conf left by an earlier setup would make slurmd try cgroups: not here.
    rm -f "$CONF_DIR/cgroup.conf"
}

write_slurmdbd_conf() {
    local conf="$CONF_DIR/slurmdbd.conf"
    cat >"$conf.tmp" <<EOF
# Written by tests/slurm/cluster.sh: accounting for the one-node test cluster.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm "$conf.tmp"
    chmod 0600 "$conf.tmp"
    mv "$conf.tmp" "$conf"
}

# start_daemon NAME COMMAND...: run it in its own session, remember its PID.
start_daemon() {
    local name="$1"
    shift
    setsid "$@" >>"$STATE_DIR/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE_DIR/$name.pid"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_for() {
    local seconds="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not ready after ${seconds}s (logs: $STATE_DIR, /var/log/slurm)"
        sleep 0.2
    done
}

start_mariadb() {
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    start_daemon mariadb mariadbd --user=mysql --datadir=/var/lib/mysql \
        --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 --port=3306 \
        --skip-log-bin --innodb-buffer-pool-size=64M
    wait_for 60 "MariaDB" mariadb-admin --socket=/run/mysqld/mysqld.sock ping
    mariadb --socket=/run/mysqld/mysqld.sock -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

add_association() {
    local user
    user="${SUDO_USER:-$(id -un)}"
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null 2>&1 || true
    sacctmgr -i add account speciesgan Cluster="$CLUSTER_NAME" \
        Description="speciesgan tests" Organization=tests >/dev/null 2>&1 || true
    sacctmgr -i add user "$user" Account=speciesgan Cluster="$CLUSTER_NAME" >/dev/null 2>&1 || true
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }

node_idle() {
    local state
    state="$(node_state)"
    [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]
}

wait_for_node() {
    local deadline=$((SECONDS + 60)) state
    while ((SECONDS < deadline)); do
        running slurmd || die "slurmd exited: $(tail -n 3 "$STATE_DIR/slurmd.out" 2>/dev/null)"
        state="$(node_state)"
        case "$state" in
            idle* | mixed* | allocated*) return 0 ;;
            drain* | down* | fail*)
                # A drained state survives restarts (e.g. after a bad gres.conf): clear it.
                scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.2
    done
    die "node $NODE not idle after 60s (state: ${state:-unknown}; see /var/log/slurm/)"
}

cmd_status() {
    local name ok=0
    for name in munged mariadb slurmdbd slurmctld slurmd; do
        if running "$name"; then
            echo "$name: running (pid $(pid_of "$name"))"
        elif [[ -f "$STATE_DIR/$name.pid" ]]; then
            echo "$name: not running"
            ok=1
        fi
    done
    if [[ -f "$STATE_DIR/mode" ]]; then
        echo "mode: $(cat "$STATE_DIR/mode")"
    fi
    if running slurmctld && running slurmd && node_idle; then
        echo "node $NODE: $(node_state)"
        return "$ok"
    fi
    echo "cluster: not running"
    return 1
}

cmd_stop() {
    local name pid i
    # Reverse start order: slurmd, slurmctld, slurmdbd, mariadb, munged.
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        pid="$(pid_of "$name")"
        if pid_alive "$pid"; then
            kill "$pid" 2>/dev/null || true
            for i in $(seq 50); do
                pid_alive "$pid" || break
                sleep 0.1
            done
            pid_alive "$pid" && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$STATE_DIR/$name.pid"
    done
    rm -f "$STATE_DIR/mode"
}

cmd_start() {
    local accounting="$1" mode=plain
    [[ "$accounting" == 1 ]] && mode=accounting
    if running slurmctld && running slurmd && [[ "$(cat "$STATE_DIR/mode" 2>/dev/null)" == "$mode" ]]; then
        wait_for_node
        log "already running ($mode)"
        return 0
    fi
    need_root
    install_packages "$accounting"
    cmd_stop
    make_dirs
    write_slurm_conf "$accounting"
    echo "$mode" >"$STATE_DIR/mode"

    # -F: stay in the foreground, so the PID we keep is the daemon's own.
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F --force
    wait_for 10 "munged" munge -n
    if [[ "$accounting" == 1 ]]; then
        write_slurmdbd_conf
        start_mariadb
        start_daemon slurmdbd /usr/sbin/slurmdbd -D
        wait_for 30 "slurmdbd" sacctmgr -n list cluster
        add_association
    fi
    start_daemon slurmctld /usr/sbin/slurmctld -D -i
    wait_for 30 "slurmctld" scontrol ping
    start_daemon slurmd /usr/sbin/slurmd -D
    wait_for_node
    log "running ($mode): node $NODE $(node_state), partitions cpu (default) and gpu"
}

main() {
    local action="${1:-}" accounting=0
    shift || true
    while (($#)); do
        case "$1" in
            --accounting) accounting=1 ;;
            *) die "unknown option: $1" ;;
        esac
        shift
    done
    case "$action" in
        install) install_packages "$accounting" ;;
        start) cmd_start "$accounting" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        *) die "usage: $0 {install|start|stop|status} [--accounting]" ;;
    esac
}

main "$@"
