#!/usr/bin/env bash
# The README's second command: installs what is missing, builds everything (preset `dev`) and runs
# every test. Extra arguments go to ctest (for example `-L unit` or `-R tokenizer`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
jobs="${ATOMA_JOBS:-$(nproc)}"
cmake --preset dev >/dev/null
cmake --build --preset dev -j "$jobs"
# Tests that load models use every core; running them side by side only slows each down.
ctest --preset dev -j 1 "$@"
