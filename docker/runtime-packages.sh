#!/usr/bin/env bash
# Prints, one a line and sorted, the Debian/Ubuntu packages that hold the shared libraries the
# given binaries load, so that a runtime image installs exactly those (apt brings their own
# dependencies). The container builds run it in their build stage on the freshly built binaries;
# tests/functional/container_files_test.py runs it on the local build.
#
#   docker/runtime-packages.sh [--exclude DIR]... BINARY...
#
# --exclude DIR: libraries under DIR are not from a package (an operator-provided libtorch tree
# copied into the image as it is): they are walked into instead, so that the packages THEY need
# are listed. Only the direct dependencies (DT_NEEDED) of each file are looked up; a library whose
# path no package owns is an error, because the runtime image would lack it; the GPU driver's
# libcuda is the exception. Needs ldd, readelf (binutils) and dpkg-query.
set -euo pipefail

excludes=()
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --exclude) excludes+=("$(realpath -m "$2")"); shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) binaries+=("$1") ;;
  esac
  shift
done
[ ${#binaries[@]} -gt 0 ] || { echo "runtime-packages: no binary given" >&2; exit 2; }

# soname -> path, for the whole closure as the dynamic loader resolves it.
declare -A where
while read -r name arrow path _; do
  [ "$arrow" = "=>" ] || continue
  if [ "$path" = "not" ]; then
    case "$name" in libcuda.so.* | libnvidia-ml.so.*) continue ;; esac  # the driver's, see below
    echo "runtime-packages: $name is not found by the loader" >&2
    exit 1
  fi
  where["$name"]="$path"
done < <(ldd "${binaries[@]}" 2>/dev/null | grep '=>' || true)

excluded() {
  local real="$1" dir
  for dir in "${excludes[@]}"; do
    case "$real" in "$dir"/*) return 0 ;; esac
  done
  return 1
}

# Each library's candidate paths: dpkg records the path as shipped, which may differ from what the
# loader printed by the /lib -> /usr/lib merge or by a symlink to the versioned file.
candidates() {
  local path="$1" real c
  real="$(realpath "$path")"
  for c in "$path" "$real"; do
    echo "$c"
    case "$c" in
      /usr/lib/*) echo "${c#/usr}" ;;
      /lib/*) echo "/usr$c" ;;
    esac
  done
}

declare -A seen
libs=()
queue=("${binaries[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  file="${queue[0]}"
  queue=("${queue[@]:1}")
  while read -r soname; do
    [ -n "$soname" ] || continue
    path="${where[$soname]:-}"
    if [ -z "$path" ]; then
      # The loader itself (ld-linux) has no "=>" line; libc6 holds it. libcuda and NVML are the
      # GPU driver's: the NVIDIA container toolkit mounts the host's at run time.
      case "$soname" in ld-linux* | libcuda.so.* | libnvidia-ml.so.*) continue ;; esac
      echo "runtime-packages: $file needs $soname, which the loader does not resolve" >&2
      exit 1
    fi
    real="$(realpath "$path")"
    [ -z "${seen[$real]:-}" ] || continue
    seen["$real"]=1
    if excluded "$real"; then
      queue+=("$real")
    else
      libs+=("$path")
    fi
  done < <(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done

# One dpkg-query for every candidate (it reads the package database once): "pkg[, pkg]: path".
declare -A owner_of
all=()
for lib in "${libs[@]}"; do mapfile -t -O "${#all[@]}" all < <(candidates "$lib"); done
while IFS= read -r line; do
  pkg="${line%%: *}"
  owner_of["${line#*: }"]="${pkg%%, *}"
done < <(dpkg-query -S "${all[@]}" 2>/dev/null || true)

declare -A packages
for lib in "${libs[@]}"; do
  pkg=
  while read -r c; do
    pkg="${owner_of[$c]:-}"
    [ -z "$pkg" ] || break
  done < <(candidates "$lib")
  if [ -z "$pkg" ]; then
    echo "runtime-packages: no package owns $lib" >&2
    exit 1
  fi
  packages["${pkg%%:*}"]=1
done
printf '%s\n' "${!packages[@]}" | sort
