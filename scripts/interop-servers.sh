#!/usr/bin/env bash
# The S3 servers of the conformance matrix (test/interop), beside the test server (Ceph 20,
# scripts/s3-server.sh), each on 127.0.0.1 only:
#
#   ceph16   bookworm's Ceph 16 RADOS Gateway (scripts/s3-server.sh with PARTWISE_S3_SUITE=bookworm)
#   swift    OpenStack Swift + s3api (Debian sid's packages, tempauth test:tester / testing)
#   moto     moto_server (sid's python3-moto, with its crc32c and awscrt modules)
#   s3rver   s3rver 3.7.1 from npm
#   fauxqs   fauxqs 2.4.1 from npm (it needs Node >= 22: run with scripts/with-node.sh 22)
#
#   scripts/interop-servers.sh start [NAME...]   install what is missing, start, write .local-interop/NAME/env
#   scripts/interop-servers.sh stop [NAME...]    stop only what this script started (by recorded PID)
#
# Swift and moto share one sid chroot (/var/lib/partwise/interop-sid, built once per machine).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$here/.local-interop"
chroot_dir="${PARTWISE_INTEROP_CHROOT:-/var/lib/partwise/interop-sid}"
mirror="${PARTWISE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
port_ceph16="${PARTWISE_INTEROP_CEPH16_PORT:-7390}"
port_swift="${PARTWISE_INTEROP_SWIFT_PORT:-7290}"
port_moto="${PARTWISE_INTEROP_MOTO_PORT:-7190}"
port_s3rver="${PARTWISE_INTEROP_S3RVER_PORT:-7090}"
port_fauxqs="${PARTWISE_INTEROP_FAUXQS_PORT:-7091}"
ALL="ceph16 swift moto s3rver fauxqs"

log() { printf '[interop] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (chroot, apt-get)"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
port_free() { ! ss -ltnH "sport = :$1" | grep -q .; }
http_up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }
wait_for() { # wait_for SECONDS what command...
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs: $root)"
    sleep 0.2
  done
}
write_env() { # write_env NAME PORT ACCESS SECRET
  mkdir -p "$root/$1"
  (umask 077; printf 'export AWS_ENDPOINT_URL=http://127.0.0.1:%s\nexport AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=us-east-1\n' "$2" "$3" "$4" >"$root/$1/env")
}
# A PID counts only while its command line is still the one recorded (after a reboot the number may be anyone's).
record() { # record NAME PID
  echo "$2" >"$root/$1/pid.$2"
  tr '\0' ' ' <"/proc/$2/cmdline" >"$root/$1/cmd.$2" 2>/dev/null || true
}
pids_of() {
  local f pid
  for f in "$root/$1"/pid.*; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if alive "$pid" && [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "$(cat "$root/$1/cmd.$pid" 2>/dev/null)" ]; then echo "$pid"; fi
  done
}
stop_one() {
  local name=$1 pid
  if [ "$name" = ceph16 ]; then ceph16 stop; return; fi
  for pid in $(pids_of "$name"); do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 10))
  for pid in $(pids_of "$name"); do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$root/$name"/pid.* "$root/$name"/cmd.*
  if [ -f "$root/$name/proc-mounted" ]; then umount "$chroot_dir/proc" 2>/dev/null || true; rm -f "$root/$name/proc-mounted"; fi
}
running() { [ -n "$(pids_of "$1")" ]; }

ceph16() {
  PARTWISE_S3_SUITE=bookworm PARTWISE_S3_STATE="$root/ceph16" PARTWISE_S3_PORT="$port_ceph16" \
    PARTWISE_S3_MON_PORT="${PARTWISE_INTEROP_CEPH16_MON_PORT:-3320}" \
    PARTWISE_S3_OSD_PORT_MIN="${PARTWISE_INTEROP_CEPH16_OSD_MIN:-7610}" \
    PARTWISE_S3_OSD_PORT_MAX="${PARTWISE_INTEROP_CEPH16_OSD_MAX:-7680}" \
    bash "$here/scripts/s3-server.sh" "$1"
}

build_chroot() {
  [ -f "$chroot_dir/.partwise-ready" ] && return 0
  log "building the sid chroot for Swift and moto at $chroot_dir (a few minutes, once per machine)"
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  local tmp="$chroot_dir.build"
  rm -rf "$tmp"; mkdir -p "$(dirname "$chroot_dir")" "$root"
  debootstrap --variant=minbase sid "$tmp" "$mirror" >"$root/debootstrap.log" 2>&1 \
    || { tail -20 "$root/debootstrap.log" >&2; die "debootstrap failed (log: $root/debootstrap.log)"; }
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod +x "$tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
  mount -t proc proc "$tmp/proc"
  local rc=0
  chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    swift-proxy swift-account swift-container swift-object python3-swift \
    python3-moto python3-flask python3-flask-cors python3-crc32c python3-awscrt curl >"$root/apt.log" 2>&1 || rc=$?
  umount "$tmp/proc"
  [ $rc = 0 ] || { tail -20 "$root/apt.log" >&2; die "installing Swift and moto failed (log: $root/apt.log)"; }
  chroot "$tmp" apt-get clean
  touch "$tmp/.partwise-ready"
  rm -rf "$chroot_dir"; mv "$tmp" "$chroot_dir"
}

# Detached from this shell (setsid) and from its descriptors, started inside the chroot by `chroot`,
# which execs the program: $! is the server's own PID.
spawn() { # spawn NAME LOG command...
  local name=$1 out=$2; shift 2
  setsid nohup "$@" >"$out" 2>&1 </dev/null &
  local pid=$!
  sleep 0.3
  record "$name" "$pid"
}

swift_conf() {
  local etc="$chroot_dir/etc/swift" p=$port_swift
  local pa=$((p + 1)) pc=$((p + 2)) po=$((p + 3))
  rm -rf "$etc" "$chroot_dir/srv/node"
  mkdir -p "$etc" "$chroot_dir/srv/node/d1" "$chroot_dir/var/cache/swift" "$chroot_dir/var/run/swift"
  cat >"$etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = partwise-interop
swift_hash_path_prefix = partwise-interop
[storage-policy:0]
name = Policy-0
default = yes
EOF
  local kind port
  for kind in account:$pa container:$pc object:$po; do
    port=${kind#*:}; kind=${kind%%:*}
    cat >"$etc/$kind-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
devices = /srv/node
mount_check = false
workers = 0
log_address = /nonexistent
[pipeline:main]
pipeline = $kind-server
[app:$kind-server]
use = egg:swift#$kind
[$kind-replicator]
[$kind-auditor]
EOF
    (cd "$etc" && chroot "$chroot_dir" swift-ring-builder "/etc/swift/$kind.builder" create 6 1 1 >/dev/null \
      && chroot "$chroot_dir" swift-ring-builder "/etc/swift/$kind.builder" add "r1z1-127.0.0.1:$port/d1" 1 >/dev/null \
      && chroot "$chroot_dir" swift-ring-builder "/etc/swift/$kind.builder" rebalance >/dev/null) || true
    [ -f "$etc/$kind.ring.gz" ] || die "building Swift's $kind ring failed"
  done
  cat >"$etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $p
workers = 0
log_address = /nonexistent
[pipeline:main]
pipeline = catch_errors gatekeeper proxy-logging listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
}

start_swift() {
  running swift && http_up "$port_swift" && { write_env swift "$port_swift" 'test:tester' testing; return; }
  stop_one swift
  build_chroot
  local p; for p in "$port_swift" $((port_swift + 1)) $((port_swift + 2)) $((port_swift + 3)); do port_free "$p" || die "port $p is taken"; done
  mkdir -p "$root/swift"
  swift_conf
  # The object server links its temp files in through /proc/self/fd (O_TMPFILE + linkat).
  if ! mountpoint -q "$chroot_dir/proc"; then mount -t proc proc "$chroot_dir/proc" && touch "$root/swift/proc-mounted"; fi
  local kind
  for kind in account container object proxy; do
    spawn swift "$root/swift/$kind.log" chroot "$chroot_dir" "swift-$kind-server" "/etc/swift/$kind-server.conf"
  done
  wait_for 60 "Swift's proxy" http_up "$port_swift"
  write_env swift "$port_swift" 'test:tester' testing
}

start_moto() {
  running moto && http_up "$port_moto" && { write_env moto "$port_moto" moto moto; return; }
  stop_one moto
  build_chroot
  port_free "$port_moto" || die "port $port_moto is taken"
  mkdir -p "$root/moto"
  spawn moto "$root/moto/moto.log" chroot "$chroot_dir" moto_server -H 127.0.0.1 -p "$port_moto"
  wait_for 60 "moto_server" http_up "$port_moto"
  write_env moto "$port_moto" moto moto
}

npm_dir="$root/npm"
npm_install() {
  [ -f "$npm_dir/.ready-3.7.1-2.4.1" ] && return 0
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && printf '{"private":true}\n' >package.json \
    && npm install --no-audit --no-fund --no-save --engine-strict=false s3rver@3.7.1 fauxqs@2.4.1 >"$npm_dir/install.log" 2>&1) \
    || { tail -20 "$npm_dir/install.log" >&2; die "npm install of s3rver and fauxqs failed"; }
  touch "$npm_dir/.ready-3.7.1-2.4.1"
}

start_s3rver() {
  running s3rver && http_up "$port_s3rver" && { write_env s3rver "$port_s3rver" S3RVER S3RVER; return; }
  stop_one s3rver
  npm_install
  port_free "$port_s3rver" || die "port $port_s3rver is taken"
  mkdir -p "$root/s3rver"
  rm -rf "$root/s3rver/data"; mkdir -p "$root/s3rver/data"
  spawn s3rver "$root/s3rver/s3rver.log" node "$npm_dir/node_modules/s3rver/bin/s3rver.js" \
    -a 127.0.0.1 -p "$port_s3rver" -d "$root/s3rver/data" --no-vhost-buckets --silent
  wait_for 30 "s3rver" http_up "$port_s3rver"
  write_env s3rver "$port_s3rver" S3RVER S3RVER
}

start_fauxqs() {
  running fauxqs && http_up "$port_fauxqs" && { write_env fauxqs "$port_fauxqs" fauxqs fauxqs; return; }
  stop_one fauxqs
  npm_install
  port_free "$port_fauxqs" || die "port $port_fauxqs is taken"
  mkdir -p "$root/fauxqs"
  # Its own command listens on 0.0.0.0; its API lets us listen on loopback only.
  cat >"$npm_dir/fauxqs-loopback.mjs" <<'EOF'
import { buildApp } from 'fauxqs';
const app = buildApp({ logger: false });
await app.listen({ port: Number(process.argv[2]), host: '127.0.0.1' });
EOF
  local node22
  node22=$(bash "$here/scripts/with-node.sh" 22 sh -c 'command -v node')
  spawn fauxqs "$root/fauxqs/fauxqs.log" "$node22" "$npm_dir/fauxqs-loopback.mjs" "$port_fauxqs"
  wait_for 30 "fauxqs" http_up "$port_fauxqs"
  write_env fauxqs "$port_fauxqs" fauxqs fauxqs
}

cmd=${1:-}; shift || true
names=${*:-$ALL}
mkdir -p "$root"; chmod 700 "$root"
case "$cmd" in
  start)
    for n in $names; do
      case "$n" in
        ceph16) ceph16 start; cp "$root/ceph16/env" "$root/ceph16/env.tmp" && mv "$root/ceph16/env.tmp" "$root/ceph16/env" ;;
        swift) start_swift ;; moto) start_moto ;; s3rver) start_s3rver ;; fauxqs) start_fauxqs ;;
        *) die "unknown server $n (one of: $ALL)" ;;
      esac
      log "$n up: $(sed -n 's/^export AWS_ENDPOINT_URL=//p' "$root/$n/env")"
    done ;;
  stop) for n in $names; do stop_one "$n"; done; log "stopped: $names" ;;
  *) echo "usage: $0 start|stop [$ALL]" >&2; exit 2 ;;
esac
