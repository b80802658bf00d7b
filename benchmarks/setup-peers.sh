#!/usr/bin/env bash
# Installs the peers the benchmark compares against, from Debian's packages: awscli (/usr/bin/aws),
# rclone, s3cmd, and GNU time (/usr/bin/time: each upload's CPU and peak RSS).
set -euo pipefail
missing=()
[ -x /usr/bin/aws ] || missing+=(awscli)
command -v rclone >/dev/null || missing+=(rclone)
command -v s3cmd >/dev/null || missing+=(s3cmd)
[ -x /usr/bin/time ] || missing+=(time)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "[bench] installing ${missing[*]} from Debian's packages" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
