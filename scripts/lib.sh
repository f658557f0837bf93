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

# The virtualenvs (the project's, the cloud's) count as built only when
# their stamp matches: written last, after venv_check passed.

# venv_stamp DIR PIP_ARG...: what a build of DIR with these arguments
# depends on.
venv_stamp() {
    { printf '%s\n' "$@"; cat "$REPO/setup.cfg" "$REPO/pyproject.toml" \
        "$REPO/upper-constraints.txt"; } | sha256sum | cut -d' ' -f1
}

# venv_check DIR MODULE...: every file that the distributions installed in
# DIR recorded is there, and each MODULE imports. Prints, for each
# distribution with files missing, the pip argument that reinstalls it.
venv_check() {
    local dir=$1; shift
    "$dir/bin/python" -I - "$@" <<'PY'
import importlib
import importlib.metadata as md
import json
import os
import sys
import sysconfig
import warnings

warnings.simplefilter('ignore')
bad = False
paths = {sysconfig.get_paths()[k] for k in ('purelib', 'platlib')}
for dist in md.distributions(path=sorted(paths)):
    files = dist.files
    if files is not None and all(f.suffix == '.pyc' or
                                 os.path.lexists(dist.locate_file(f))
                                 for f in files):
        continue
    bad = True
    name, version = dist.metadata['Name'], dist.version
    url = json.loads(dist.read_text('direct_url.json') or '{}')
    if url.get('dir_info', {}).get('editable'):
        print('--editable=' + url['url'].removeprefix('file://'))
    elif name and version:
        print(f'{name}=={version}')
    print(f'incomplete: {name or dist._path}', file=sys.stderr)
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except Exception as e:
        bad = True
        print(f'import {module}: {type(e).__name__}: {e}', file=sys.stderr)
sys.exit(bad)
PY
}

# ensure_venv DIR MODULES PIP_ARG...: the virtualenv DIR with PIP_ARGs
# installed (pinned by upper-constraints.txt) and MODULES (one string)
# importable. An incomplete one is repaired; one that cannot be, rebuilt.
ensure_venv() {
    local dir=$1 modules=$2; shift 2
    local stamp fix attempt
    stamp=$(venv_stamp "$dir" "$@")
    # shellcheck disable=SC2086
    if [ "$(cat "$dir/.novaext-stamp" 2>/dev/null)" = "$stamp" ] \
            && venv_check "$dir" $modules >/dev/null 2>&1; then
        say "virtualenv $dir: up to date"
        return
    fi
    for attempt in 1 2; do
        say "virtualenv $dir: building (a few minutes when new) or repairing"
        rm -f "$dir/.novaext-stamp"
        if ! "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
            rm -rf "$dir"
            python3 -m venv "$dir"
        fi
        "$dir/bin/python" -m pip install -q --upgrade pip 'setuptools>=70' wheel
        "$dir/bin/python" -m pip install -q -c "$REPO/upper-constraints.txt" "$@"
        # shellcheck disable=SC2086
        if ! fix=$(venv_check "$dir" $modules) && [ -n "$fix" ]; then
            # shellcheck disable=SC2086
            "$dir/bin/python" -m pip install -q --ignore-installed --no-deps \
                -c "$REPO/upper-constraints.txt" $fix || true
        fi
        # shellcheck disable=SC2086
        if venv_check "$dir" $modules >/dev/null; then
            echo "$stamp" > "$dir/.novaext-stamp"
            say "virtualenv $dir: ready"
            return
        fi
        ((attempt == 1)) && say "virtualenv $dir: still incomplete; rebuilding it whole"
        rm -rf "$dir"
    done
    die "virtualenv $dir: incomplete after a rebuild (see above)"
}
