# Shared by the scripts in this directory; source it, don't run it.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NOVAEXT_VENV:-$REPO/.venv}
# Where the development services keep their config, secrets, logs and PIDs.
STATE=${NOVAEXT_STATE:-/var/lib/novaext-dev}
PIDS=$STATE/pids
RSYNC_PORT=${NOVAEXT_RSYNC_PORT:-8730}

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run $0 as root (it installs packages and starts libvirtd)"
}

# pid_alive FILE: true if FILE holds the PID of a live process.
pid_alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 < "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
