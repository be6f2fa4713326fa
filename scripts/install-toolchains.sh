#!/usr/bin/env bash
# The system tools the C runtime's builds and tests use: a C compiler and cmake (the Python
# extension and native builds), clang and its runtimes (the libFuzzer harness), the aarch64 cross compiler, its
# sanitizer runtimes and qemu-user (the Cortex-A53/A72/A76 runs, and the x86 set under qemu-x86_64 -cpu max).
# Installs what is missing with apt-get when run as root; otherwise prints the command to run.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need cc gcc
need cmake cmake
need ninja ninja-build
need clang clang
# libFuzzer and the sanitizers' runtimes for clang: a package apart from clang's own
if command -v clang >/dev/null 2>&1; then
  [ -e "$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ] || missing+=(libclang-rt-dev)
else
  missing+=(libclang-rt-dev)
fi
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need qemu-aarch64 qemu-user
need qemu-x86_64 qemu-user
[ -e /usr/aarch64-linux-gnu/lib/libc.a ] || missing+=(libc6-dev-arm64-cross)
# the aarch64 sanitizer runtimes: the NEON kernels run under ASan+UBSan in qemu-aarch64
compgen -G "/usr/aarch64-linux-gnu/lib/libasan.so.*" >/dev/null || missing+=(libasan8-arm64-cross)
compgen -G "/usr/aarch64-linux-gnu/lib/libubsan.so.*" >/dev/null || missing+=(libubsan1-arm64-cross)
python="${PYTHON:-python3}"
include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
[ -e "$include/Python.h" ] || missing+=(python3-dev)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
