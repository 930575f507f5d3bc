#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what the tests need (prometheus and
# promtool from Debian's `prometheus` package; librocm-smi-dev and libclang-dev to build the
# optional `rocm-smi` feature; gcc-aarch64-linux-gnu and the rustup target for the arm64 build;
# kubectl, kubernetes-validate and the Helm engine through check-deploy.sh), checks the deployment
# artifacts (overlays and Helm chart), formatting and lints, builds the workspace (the agent and the
# mock NVML and ROCm SMI libraries) and the agent for aarch64-unknown-linux-gnu, and runs every
# test, the end-to-end one with a real Prometheus included, then the `rocm-smi` feature's tests
# against the mock librocm_smi64. A missing tool fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing+=(prometheus)
# The rocm-smi feature links Debian's librocm_smi64 and runs bindgen (libclang) on its header.
{ [ -f /usr/include/rocm_smi/rocm_smi.h ] && [ -e /usr/lib/librocm_smi64.so ]; } || missing+=(librocm-smi-dev)
have_libclang() {
  compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null \
    && compgen -G "/usr/lib/llvm-*/lib/clang/*/include/stddef.h" >/dev/null
}
have_libclang || missing+=(libclang-dev)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
# The arm64 cross build (GH200/GB200 nodes; the Dockerfile's multi-arch build does the same):
# Debian's cross gcc as the linker, and its arm64 libc.
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
[ -d /usr/aarch64-linux-gnu/lib ] && compgen -G "/usr/aarch64-linux-gnu/lib/libc.so*" >/dev/null || missing+=(libc6-dev-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
for tool in promtool prometheus python3 cargo readelf aarch64-linux-gnu-gcc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required and could not be installed" >&2; exit 1; }
done
[ -e /usr/lib/librocm_smi64.so ] || { echo "error: librocm-smi-dev is required and could not be installed" >&2; exit 1; }
have_libclang || { echo "error: libclang-dev is required and could not be installed" >&2; exit 1; }

echo "==> deployment artifacts (kustomize overlays, Helm chart, rules, dashboards)"
scripts/check-deploy.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p gpu-pod-exporter --all-targets --features rocm-smi --locked -- -D warnings
echo "==> cargo build (agent and the mock NVML and ROCm SMI libraries)"
cargo build --workspace --locked
echo "==> cargo build --target aarch64-unknown-linux-gnu (the agent, for arm64 nodes)"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  cargo build -p gpu-pod-exporter --target aarch64-unknown-linux-gnu --locked
readelf -h "${CARGO_TARGET_DIR:-target}/aarch64-unknown-linux-gnu/debug/gpu-pod-exporter" | grep -q 'Machine: *AArch64' \
  || { echo "error: the aarch64 build is not an AArch64 executable" >&2; exit 1; }
# First the rocm-smi feature (its unit tests, and the agent linked against librocm_smi64 run
# with the mock in the real library's place), so that the default suite that follows leaves
# the default binary in target/.
echo "==> cargo test --features rocm-smi"
cargo test -p gpu-pod-exporter --features rocm-smi --locked --lib --test rocm_smi -- --test-threads="${TEST_THREADS:-4}"
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
