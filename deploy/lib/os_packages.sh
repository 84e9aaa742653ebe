#!/usr/bin/env bash
# os_packages.sh PACKAGE...: install Debian packages (as root), one apt at a time on this machine.
# The set-up scripts (Chromium, PostgreSQL, Redis, Docker) and the tests call it. Two of them may
# run at once (say `make team-up` beside `make test`), and apt takes its locks without waiting:
# the installs queue on one lock file here (flock), and apt itself waits for a lock held by anyone
# else (DPkg::Lock::Timeout). Its output is for errors only.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "missing: $* (install these Debian packages as root)" >&2; exit 1; }
exec 9> /var/lock/flights-os-packages.lock
flock 9
wait=(-o DPkg::Lock::Timeout=600)
{ apt-get "${wait[@]}" update -qq || echo 'apt-get update failed: using the package lists already present' >&2; } >&2
DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq "$@" > /dev/null
