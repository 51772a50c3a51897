#!/bin/sh
# Installs the Debian packages in scripts/debian-packages.txt that are missing. As root it runs
# apt-get (with one 'apt-get update' first); otherwise it prints the exact command and fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
list="$here/debian-packages.txt"

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: not a Debian system (no dpkg-query); install the equivalents of:" >&2
  grep -v '^\s*#' "$list" | grep -v '^\s*$' | tr '\n' ' ' >&2
  echo >&2
  exit 1
fi

missing=""
for pkg in $(sed -e 's/#.*//' "$list"); do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *" installed") ;;
    *) missing="$missing $pkg" ;;
  esac
done

if [ -z "$missing" ]; then
  echo "deps: all Debian packages present"
  exit 0
fi

echo "deps: missing:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: not root; run this and then re-run make:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
