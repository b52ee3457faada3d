#!/usr/bin/env bash
# Debian packages the tests and corpus tools use: fuse3 (fusermount3, libfuse3) and libjpeg-turbo-progs.
# Needs root; a no-op when they are already installed.
set -euo pipefail
need=()
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v cjpeg >/dev/null || need+=(libjpeg-turbo-progs)
[ ${#need[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || { echo "run as root to install: ${need[*]}" >&2; exit 1; }
apt_install() { apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null; }
apt_install 2>/dev/null || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null && apt_install; }
