#!/bin/sh
# deps.sh - install what ctnasd needs to build and test, from Debian 12
# packages (run as root).  Nothing is downloaded from anywhere else.
set -eu
export DEBIAN_FRONTEND=noninteractive
pkgs="build-essential autoconf automake libtool pkg-config
      libmicrohttpd-dev libjansson-dev libsqlite3-dev libopenblas-dev
      libuv1-dev python3 python3-jsonschema python3-yaml valgrind openssl"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
