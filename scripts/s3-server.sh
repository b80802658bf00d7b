#!/usr/bin/env bash
# A real S3 server on loopback: Ceph 20 (Tentacle) RADOS Gateway from Debian sid's packages,
# in a debootstrap chroot (bookworm's own Ceph 16 ignores S3 additional checksums).
# PARTWISE_S3_SUITE=bookworm builds that Ceph 16 instead, in a chroot of its own, for the
# conformance matrix (test/interop); with it, set other ports and PARTWISE_S3_STATE.
#
#   scripts/s3-server.sh start   build the chroot if missing, start mon + OSD + radosgw, write .local-s3/env
#   scripts/s3-server.sh stop    stop only the processes this script started (by recorded PID)
#   scripts/s3-server.sh status  exit 0 when the server answers
#
# Idempotent: `start` with the server up only rewrites the env file; a server another checkout of
# partwise started on the same port is reused (its credentials are kept beside its cluster).
# Everything listens on 127.0.0.1. The chroot is shared per machine (it is ~750 MB and takes about a
# minute to build); a cluster's state lives in memory (memstore), in a folder of the chroot per RGW
# port (/lab/partwise for the default 7490), so a start after a stop is always a fresh, empty
# cluster, and a checkout on other ports never touches another's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite="${PARTWISE_S3_SUITE:-sid}"
state="${PARTWISE_S3_STATE:-$here/.local-s3}"
chroot_dir="${PARTWISE_S3_CHROOT:-/var/lib/partwise/ceph-$suite}"
rgw_port="${PARTWISE_S3_PORT:-7490}"
mon_port="${PARTWISE_S3_MON_PORT:-3310}"
osd_port_min="${PARTWISE_S3_OSD_PORT_MIN:-7500}"
osd_port_max="${PARTWISE_S3_OSD_PORT_MAX:-7600}"
mirror="${PARTWISE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Inside the chroot; one per port, so that a second cluster on other ports has a folder of its own.
if [ "$rgw_port" = 7490 ]; then lab="/lab/partwise"; else lab="/lab/partwise-$rgw_port"; fi
host_lab="$chroot_dir$lab"
conf="$lab/ceph.conf"

log() { printf '[s3-server] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
in_chroot() { chroot "$chroot_dir" "$@"; }

[ "$(id -u)" = 0 ] || die "needs root (chroot, apt-get). Run as root, or point AWS_ENDPOINT_URL at another S3 server."

build_chroot() {
  [ -f "$chroot_dir/.partwise-ready" ] && return 0
  log "building the Ceph chroot ($suite) at $chroot_dir (about 1-2 minutes, once per machine)"
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  # Build beside the final path and rename at the end: an interrupted build never looks ready.
  local tmp="$chroot_dir.build"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$chroot_dir")"
  debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$state/debootstrap.log" 2>&1 \
    || { tail -20 "$state/debootstrap.log" >&2; die "debootstrap failed (log: $state/debootstrap.log)"; }
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod +x "$tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
  # Since late 2026 sid's cryptsetup-bin postinst runs systemd-tmpfiles, which fails without /proc.
  mount -t proc proc "$tmp/proc"
  trap 'umount "$tmp/proc" 2>/dev/null || true' EXIT
  local rc=0
  chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    radosgw ceph-mon ceph-osd ceph-common >"$state/apt.log" 2>&1 || rc=$?
  umount "$tmp/proc"; trap - EXIT
  [ $rc = 0 ] || { tail -20 "$state/apt.log" >&2; die "installing ceph in the chroot failed (log: $state/apt.log)"; }
  chroot "$tmp" apt-get clean
  in_version="$(chroot "$tmp" radosgw --version 2>/dev/null | head -1 || true)"
  log "installed: $in_version"
  touch "$tmp/.partwise-ready"
  rm -rf "$chroot_dir"
  mv "$tmp" "$chroot_dir"
}

# A zombie (killed, not yet reaped) is not alive.
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
# A recorded PID counts only while it is still a Ceph daemon: after a reboot or a crash the number
# may belong to any process, which neither `status` may take for the server nor `stop` may kill.
is_ceph() {
  case "$(cat "/proc/${1:-x}/comm" 2>/dev/null)" in radosgw | ceph-osd | ceph-mon) return 0 ;; *) return 1 ;; esac
}
pid_of() {
  local pid
  pid=$(cat "$state/$1.pid" 2>/dev/null || true)
  if is_ceph "$pid"; then echo "$pid"; fi
}

http_up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$rgw_port/"; }

signed_ok() {
  local out
  out=$(curl -s --max-time 3 -w '%{http_code}' -o /dev/null \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$1:$2" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://127.0.0.1:$rgw_port/") || return 1
  [ "$out" = 200 ]
}

running() {
  alive "$(pid_of rgw)" && alive "$(pid_of osd)" && alive "$(pid_of mon)" && http_up
}

# True when any daemon of the cluster in this port's folder is alive, whoever started it (Ceph's own
# PID files: the chroot shares the host's PID namespace).
lab_alive() {
  local f pid
  for f in "$host_lab"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null)
    is_ceph "$pid" && alive "$pid" && return 0
  done
  return 1
}

write_env() {
  # shellcheck disable=SC1091
  . "$state/credentials"
  umask 077
  cat >"$state/env.tmp" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
EOF
  mv "$state/env.tmp" "$state/env"
}

wait_for() { # wait_for SECONDS what command...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs: $host_lab/*.log)"
    sleep 0.2
  done
}

port_free() { ! ss -ltnH "sport = :$1" | grep -q .; }

write_conf() { # write_conf FSID [OUT]
  cat >"${2:-$host_lab/ceph.conf}" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = $osd_port_min
ms bind port max = $osd_port_max
auth cluster required = none
auth service required = none
auth client required = none
run dir = $lab/run
admin socket = $lab/run/\$name.asok
log file = $lab/\$name.log
pid file = $lab/run/\$name.pid
crash dir = $lab/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on too few osds = false
osd crush chooseleaf type = 0
mon data avail warn = 2
mon data avail crit = 1

[mon]
mon data = $lab/mon.\$id
paxos propose interval = 0.05
paxos min wait = 0.01

[osd]
osd data = $lab/osd.\$id
osd objectstore = memstore
memstore device bytes = 17179869184
osd memory target = 1073741824
osd max object size = 134217728

[client.rgw.a]
# Without tcp_nodelay, beast leaves Nagle's algorithm on: a response with an XML body on a reused
# connection (Create, ListParts, Complete) waits ~40 ms for the client's delayed ACK (measured:
# 47-51 ms against 3-7 ms with it). Every client pays it alike; a short resume notices.
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
ms mon client mode = crc
rgw data = $lab/rgw.a
rgw dns name = localhost
rgw enable usage log = false
# Lets tests build >1000-part uploads from tiny parts; partwise enforces 5 MiB itself by default.
rgw multipart min part size = 0
EOF
}

# True when the running cluster's ceph.conf is what this script writes now (same fsid); a server
# started by an older checkout (say, without tcp_nodelay) is not reused as if it were current.
conf_is_current() {
  local fsid want
  fsid=$(sed -n 's/^fsid = //p' "$host_lab/ceph.conf" 2>/dev/null)
  [ -n "$fsid" ] || return 1
  want=$(write_conf "$fsid" /dev/stdout)
  [ "$want" = "$(cat "$host_lab/ceph.conf")" ]
}

start() {
  mkdir -p "$state"
  chmod 700 "$state"
  # One start per port at a time, whichever checkout: two at once could both find the port free and
  # the folder unused, then wipe each other's cluster.
  mkdir -p "$(dirname "$chroot_dir")"
  exec 9>"$(dirname "$chroot_dir")/s3-server-$rgw_port.lock"
  flock 9
  if running && conf_is_current; then
    write_env
    log "already running on http://127.0.0.1:$rgw_port; env rewritten: $state/env"
    return 0
  fi
  # Started by another checkout (no PID recorded here): reused as it is, with the credentials it
  # keeps beside its cluster; stopping it is for the checkout that started it.
  if ! running && lab_alive && http_up && conf_is_current && [ -f "$host_lab/credentials" ]; then
    (umask 077; cp "$host_lab/credentials" "$state/credentials")
    write_env
    log "already running on http://127.0.0.1:$rgw_port (started by another checkout: $(cat "$host_lab/owner" 2>/dev/null || echo unknown)); env: $state/env"
    return 0
  fi
  running && log "running with another configuration than this script's: restarting it (its data goes)"
  stop_quiet
  build_chroot
  for p in "$rgw_port" "$mon_port"; do
    port_free "$p" || die "port $p on 127.0.0.1 is taken by another process; set PARTWISE_S3_PORT / PARTWISE_S3_MON_PORT"
  done
  # Never under a live cluster (one another checkout started, say): its folder is its state.
  lab_alive && die "a cluster still runs in $host_lab (started by $(cat "$host_lab/owner" 2>/dev/null || echo 'another checkout')): stop it from there (scripts/s3-server.sh stop), or use other ports (PARTWISE_S3_PORT, PARTWISE_S3_MON_PORT)"
  local t0=$SECONDS
  rm -rf "$host_lab"
  mkdir -p "$host_lab/run" "$host_lab/crash" "$host_lab/rgw.a"
  printf '%s\n' "$here" >"$host_lab/owner"
  local fsid osd_uuid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  in_chroot monmaptool --create --clobber --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$lab/monmap" >/dev/null
  in_chroot ceph-mon -c "$conf" --mkfs -i a --monmap "$lab/monmap" >"$host_lab/mkfs-mon.out" 2>&1
  # `chroot` execs the daemon, so $! is the daemon's own PID on the host.
  # 9>&-: the daemons must not inherit the start lock, or it is held as long as they run.
  nohup chroot "$chroot_dir" ceph-mon -c "$conf" -f -i a >"$host_lab/mon.out" 2>&1 9>&- &
  echo $! >"$state/mon.pid"
  wait_for 60 "the monitor" in_chroot ceph -c "$conf" --connect-timeout 2 mon stat
  local id
  id=$(in_chroot ceph -c "$conf" osd new "$osd_uuid")
  mkdir -p "$host_lab/osd.$id"
  in_chroot ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$osd_uuid" >"$host_lab/mkfs-osd.out" 2>&1
  nohup chroot "$chroot_dir" ceph-osd -c "$conf" -f -i "$id" >"$host_lab/osd.out" 2>&1 9>&- &
  echo $! >"$state/osd.pid"
  wait_for 60 "the OSD" sh -c "chroot '$chroot_dir' ceph -c '$conf' osd stat -f json | grep -q '\"num_up_osds\":1'"
  # Pacific's radosgw names its threads through /proc/self/task/*/comm and aborts without /proc
  # (rgw_notify.cc: FAILED ceph_assert(rc == 0)); Tentacle's does not need it.
  if [ "$suite" != sid ] && ! mountpoint -q "$chroot_dir/proc"; then
    mount -t proc proc "$chroot_dir/proc" && touch "$state/proc-mounted"
  fi
  nohup chroot "$chroot_dir" radosgw -c "$conf" -f -n client.rgw.a >"$host_lab/rgw.out" 2>&1 9>&- &
  echo $! >"$state/rgw.pid"
  wait_for 90 "radosgw HTTP" http_up
  # Fresh random credentials per cluster: nothing secret is fixed in the repository.
  local ak sk
  ak="PW$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-z A-Z)"
  sk="$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n' | head -c 40)"
  (umask 077; printf 'ACCESS_KEY=%s\nSECRET_KEY=%s\n' "$ak" "$sk" >"$state/credentials"; cp "$state/credentials" "$host_lab/credentials")
  in_chroot radosgw-admin -c "$conf" user create --uid=partwise --display-name=partwise \
    --access-key="$ak" --secret-key="$sk" >/dev/null 2>"$host_lab/user-create.err"
  wait_for 60 "a signed request" signed_ok "$ak" "$sk"
  write_env
  log "up on http://127.0.0.1:$rgw_port in $((SECONDS - t0))s; env: $state/env"
}

kill_wait() { # kill_wait NAME GRACE_SECONDS
  local pid; pid=$(pid_of "$1")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + $2))
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    # Tentacle's radosgw takes ~30 s to exit on SIGTERM (sleeping managers); the OSD holds the data.
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$state/$1.pid"
}

stop_quiet() {
  kill_wait rgw 3; kill_wait osd 10; kill_wait mon 10
  if [ -f "$state/proc-mounted" ]; then umount "$chroot_dir/proc" 2>/dev/null || true; rm -f "$state/proc-mounted"; fi
}

stop() {
  mkdir -p "$state"
  stop_quiet
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if running; then log "running on http://127.0.0.1:$rgw_port"
    elif lab_alive && http_up; then log "running on http://127.0.0.1:$rgw_port (started by another checkout: $(cat "$host_lab/owner" 2>/dev/null || echo unknown))"
    else log "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
