#!/usr/bin/env bash
# Installs everything mftcoder_pp needs on a fresh Debian 12 machine (run as root, or with sudo):
# the sandbox (bubblewrap), the toolchains of the six evaluated languages and the libraries their
# benchmarks use, the Python package with its dependencies (CPU PyTorch), and prepared toolchain
# artifacts (Rust crates built offline from Debian's sources, the js-md5 npm package).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
packages=(bubblewrap g++ libssl-dev libboost-dev golang-go golang-github-stretchr-testify-dev
          librust-rand-dev librust-regex-dev librust-md5-dev)
# Toolchains that may already be installed from elsewhere (rustup, nodesource) are kept as they are.
command -v javac >/dev/null || packages+=(default-jdk-headless)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
command -v rustc >/dev/null || packages+=(rustc)
command -v cargo >/dev/null || packages+=(cargo)
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The CPU build of PyTorch (a looser requirement would pull a multi-GB CUDA build).
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e ".[dev]"

python3 -m mftcoder_pp.cli toolchains --install-npm
