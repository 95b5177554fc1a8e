#!/usr/bin/env bash
# Builds and checks the engine on a GPU machine that has pip torch with CUDA, CMake, Ninja and
# nvcc but none of our Debian -dev packages and no package registry (DESIGN §3; issue 2).
#
#   scripts/gpu-kit.sh fetch [KIT]   on Debian 12 with network: downloads the .debs the engine-only
#                                    build needs into KIT (default .gpu-kit, git-ignored)
#   scripts/gpu-kit.sh run [KIT]     on the GPU machine: unpacks KIT's .debs into a private prefix
#                                    (never into /), configures the engine-only preset against
#                                    the python3 torch, builds, runs the engine's tests with
#                                    ATOMA_REQUIRE_CUDA=1 (a skipped CUDA test fails instead) and
#                                    the engine benchmark on cuda (bfloat16, float32) and cpu
#
# Environment for `run`: PYTHON (default python3: the one whose torch has CUDA), ATOMA_GPU_DEPS
# (the prefix, default /tmp/atoma-gpu-deps), BUILD (default build/engine), OUT (if set, logs and
# figures are copied there), JOBS (default: all cores), ATOMA_GPU_KIT_CPU=1 to run without a GPU
# (checks the kit itself: CUDA tests then skip, the benchmark runs on the CPU only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "gpu-kit: $*" >&2; exit 1; }

# What the engine-only build links or includes besides torch, with their runtime libraries and
# pkg-config (CMake's FindPkgConfig needs the program).
KIT_PACKAGES=(
  libabsl-dev libabsl20220623
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  nlohmann-json3-dev
  libssl-dev libssl3
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libgtest-dev libgmock-dev
  pkgconf pkgconf-bin libpkgconf3
)

cmd="${1:-}"
kit="${2:-$here/.gpu-kit}"

case "$cmd" in
  fetch)
    command -v apt-get >/dev/null || die "fetch needs apt-get (Debian 12)"
    mkdir -p "$kit"
    cd "$kit"
    have=0
    for p in "${KIT_PACKAGES[@]}"; do
      if compgen -G "${p}_*.deb" >/dev/null; then have=$((have + 1)); continue; fi
      apt-get download -qq "$p" || die "apt-get download $p failed (run apt-get update?)"
    done
    echo "gpu-kit: $(ls ./*.deb | wc -l) .debs in $kit ($have were already there," \
      "$(du -sh . | cut -f1))"
    ;;
  run)
    [ -d "$kit" ] && compgen -G "$kit/*.deb" >/dev/null || die "no .debs in $kit: run fetch first"
    PYTHON="${PYTHON:-python3}"
    prefix="${ATOMA_GPU_DEPS:-/tmp/atoma-gpu-deps}"
    build="${BUILD:-$here/build/engine}"
    jobs="${JOBS:-$(nproc)}"
    mkdir -p "$prefix"
    for f in "$kit"/*.deb; do
      if command -v dpkg >/dev/null; then
        dpkg -x "$f" "$prefix"
      else  # a .deb is an ar archive holding data.tar.*
        tmp="$(mktemp -d)"
        (cd "$tmp" && ar x "$f" && tar -xf data.tar.* -C "$prefix")
        rm -rf "$tmp"
      fi
    done
    lib="$prefix/usr/lib/x86_64-linux-gnu"
    # Debian's -dev symlinks are absolute-free (libfoo.so -> libfoo.so.N) and the CMake package
    # files locate themselves, so the prefix works wherever it is unpacked. pkg-config's .pc files
    # say prefix=/usr: the sysroot variable rewrites their -I and -L.
    export PKG_CONFIG_SYSROOT_DIR="$prefix"
    export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$prefix/usr/share/pkgconfig"
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    torch_prefix="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" ||
      die "$PYTHON cannot import torch (set PYTHON)"
    "$PYTHON" -c 'import torch; print("gpu-kit: torch", torch.__version__, "cuda",
      torch.version.cuda, "devices", torch.cuda.device_count())'
    # A torch with CUDA makes its CMake package enable CUDA and find the toolkit, whose version
    # must match nvcc's: point both at the nvcc on PATH (or CUDA_HOME). No .cu files of ours.
    cuda_args=()
    nvcc="$(command -v nvcc || true)"
    if [ -z "$nvcc" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
      nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
    fi
    if [ -n "$nvcc" ]; then
      cuda_root="$(cd "$(dirname "$nvcc")/.." && pwd)"
      cuda_args=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCUDAToolkit_ROOT="$cuda_root"
        -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root")
      export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"  # skips GPU detection at configure
    fi
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATOMA_ENGINE_ONLY=ON \
      -DCMAKE_PREFIX_PATH="$prefix/usr;$lib/cmake;$torch_prefix" \
      -DPKG_CONFIG_EXECUTABLE="$prefix/usr/bin/pkgconf" -DOPENSSL_ROOT_DIR="$prefix/usr" \
      "${cuda_args[@]}"
    cmake --build "$build" -j "$jobs"
    export ATOMA_PYTHON="$(command -v "$PYTHON")"  # NumPy for the reference forward pass
    if [ "${ATOMA_GPU_KIT_CPU:-0}" != 1 ]; then export ATOMA_REQUIRE_CUDA=1; fi
    status=0
    ctest --test-dir "$build" --output-on-failure -j1 2>&1 | tee "$build/ctest.log" || status=1
    # The CUDA tests' printed figures (reference errors, premise lines, canary) from the model
    # and engine suites, run verbosely once more.
    for t in model/atoma_model_tests runtime/atoma_engine_tests; do
      ATOMA_SOURCE_DIR="$here" "$build/tests/unit/$t" --gtest_filter='*Cuda*:*Reference*:*Reported*' \
        2>&1 | grep -E '^\[ (reference|premise|canary)|^\[  (PASSED|FAILED|SKIPPED)' || true
    done | tee "$build/figures.log"
    bench="$build/bench/atoma_engine_bench"
    if [ "${ATOMA_GPU_KIT_CPU:-0}" != 1 ]; then
      for dt in bfloat16 float32; do
        "$bench" --device cuda --dtype "$dt" 2>&1 | tee "$build/bench-cuda-$dt.log" || status=1
      done
    fi
    "$bench" --threads "$(nproc)" 2>&1 | tee "$build/bench-cpu.log" || status=1
    if [ -n "${OUT:-}" ]; then
      cp "$build"/ctest.log "$build"/figures.log "$build"/bench-*.log "$OUT"/ 2>/dev/null || true
    fi
    exit "$status"
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
