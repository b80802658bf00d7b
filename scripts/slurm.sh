#!/usr/bin/env bash
# A real Slurm cluster on loopback, for running partwise's workers under a scheduler as operators
# do: Debian's slurm-wlm and munge, one slurmctld and three slurmd nodes (n1..n3) on one host, all
# on 127.0.0.1 (see ../shared/reference/slurm.md for what works and the traps).
#
#   scripts/slurm.sh start   install what is missing, start munged (unless one answers), slurmctld and
#                            the nodes; write .local-slurm/env (SLURM_CONF) for sbatch and friends
#   scripts/slurm.sh stop    stop only the processes this script started (by recorded PID and name)
#   scripts/slurm.sh status  exit 0 when the controller answers and the nodes are up
#
# Idempotent: `start` with the cluster up only rewrites the env file. State lives in .local-slurm/
# of this checkout; PARTWISE_SLURM_PORT (default 16817) moves the controller, nodes and srun ports.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lab="$here/.local-slurm"
conf="$lab/slurm.conf"
ctld_port="${PARTWISE_SLURM_PORT:-16817}"
nodes=(n1 n2 n3)

log() { printf '[slurm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (apt-get, munged, slurmd as root)."

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
# A recorded PID counts only while it is still the daemon it was: after a reboot the number may be anyone's.
is_named() { [ "$(cat "/proc/${1:-x}/comm" 2>/dev/null)" = "$2" ]; }
pid_in() { local p; p=$(cat "$1" 2>/dev/null || true); if is_named "$p" "$2"; then echo "$p"; fi; }

install_missing() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  log "installing slurm-wlm and munge from Debian's packages (about a minute, once per machine)"
  # No service may be started by the packages' scripts: this script starts what it needs itself.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >"$lab/apt.log" 2>&1 || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { tail -20 "$lab/apt.log" >&2; die "installing slurm-wlm failed (log: $lab/apt.log)"; }
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  munge_ok && return 0 # one answers already (the machine's own, or another checkout's): use it
  [ -f /etc/munge/munge.key ] || die "no /etc/munge/munge.key (the munge package creates it)"
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged --pid-file="/run/munge/munged.pid" 9>&-
  local i
  for i in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || die "munged did not answer"
  cp /run/munge/munged.pid "$lab/run/munged.pid" # started here: stopped here
}

write_conf() {
  local node_ports="$((ctld_port + 1))-$((ctld_port + ${#nodes[@]}))"
  cat >"$conf" <<EOF
ClusterName=partwise
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SrunPortRange=$((ctld_port + 100))-$((ctld_port + 199))
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=30
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$lab/state
SlurmdSpoolDir=$lab/spool/%n
SlurmdPidFile=$lab/run/slurmd-%n.pid
SlurmdLogFile=$lab/log/slurmd-%n.log
SlurmctldPidFile=$lab/run/slurmctld.pid
SlurmctldLogFile=$lab/log/slurmctld.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$lab/log/jobcomp.log
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=10
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=n[1-${#nodes[@]}] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[$node_ports] CPUs=2 RealMemory=1024
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

ctld_pid() { pid_in "$lab/run/slurmctld.pid" slurmctld; }
slurmd_pid() { pid_in "$lab/run/slurmd-$1.pid" slurmd; }

running() {
  alive "$(ctld_pid)" || return 1
  local n
  for n in "${nodes[@]}"; do alive "$(slurmd_pid "$n")" || return 1; done
  SLURM_CONF="$conf" timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

write_env() {
  cat >"$lab/env.tmp" <<EOF
export SLURM_CONF=$conf
EOF
  mv "$lab/env.tmp" "$lab/env"
}

start() {
  mkdir -p "$lab"
  exec 9>"$lab/start.lock"
  flock 9
  if running; then
    write_env
    log "already running (controller on 127.0.0.1:$ctld_port); env rewritten: $lab/env"
    return 0
  fi
  stop_quiet
  install_missing
  # Trap 1 of slurm.md: the controller binds what the host's name resolves to; loopback only.
  local addr
  addr=$(getent ahostsv4 "$(hostname)" | awk 'NR==1{print $1}')
  [ "$addr" = 127.0.0.1 ] || die "this host's name ($(hostname)) resolves to ${addr:-nothing}, not 127.0.0.1: slurmctld would bind there. Add '127.0.0.1 $(hostname)' to /etc/hosts (Debian's default maps it to 127.0.1.1)"
  local t0=$SECONDS
  rm -rf "$lab/state" "$lab/spool" "$lab/log" "$lab/run"
  mkdir -p "$lab/state" "$lab/log" "$lab/run"
  for n in "${nodes[@]}"; do mkdir -p "$lab/spool/$n"; done
  write_conf
  start_munge
  slurmctld -f "$conf" -c 9>&- >"$lab/log/slurmctld.out" 2>&1 || die "slurmctld did not start: $(tail -3 "$lab/log/slurmctld.out")"
  local n
  # In parallel: one can take seconds to daemonize under load.
  for n in "${nodes[@]}"; do slurmd -f "$conf" -N "$n" 9>&- >"$lab/log/slurmd-$n.out" 2>&1 & done
  wait || die "a slurmd did not start (logs: $lab/log)"
  local i
  for i in $(seq 150); do running && break; sleep 0.2; done
  running || die "the cluster did not come up (logs: $lab/log)"
  write_env
  log "up in $((SECONDS - t0))s: controller 127.0.0.1:$ctld_port, nodes ${nodes[*]}; env: $lab/env"
}

stop_pid() { # stop_pid PID NAME
  local pid=$1 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_quiet() {
  local n pids=()
  for n in "${nodes[@]}"; do pids+=("$(slurmd_pid "$n")"); done
  pids+=("$(ctld_pid)")
  local p
  for p in "${pids[@]}"; do stop_pid "$p" & done
  wait
  # munged only if this script started it.
  stop_pid "$(pid_in "$lab/run/munged.pid" munged)"
  rm -f "$lab/run/munged.pid"
}

case "${1:-}" in
  start) start ;;
  stop)
    [ -d "$lab" ] || exit 0
    stop_quiet
    log "stopped"
    ;;
  status)
    running && { log "up (controller 127.0.0.1:$ctld_port)"; exit 0; }
    log "not running"
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
