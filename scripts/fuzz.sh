#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ briefly, each from its checked-in seed corpus (fuzz/README.md):
#
#   scripts/fuzz.sh                  every target, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh web_config accept
#
# Installs cargo-fuzz from crates.io when it is missing. libFuzzer needs nightly-only compiler
# flags: a nightly toolchain is used where rustup has one, else RUSTC_BOOTSTRAP=1 lets stable
# accept them. What libFuzzer finds goes to a scratch corpus under fuzz/target, so the seeds
# stay unchanged; a crash is written to fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-30}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
for t in "${targets[@]}"; do
  echo "==> fuzz $t (${seconds} s)"
  scratch="target/scratch-corpus/$t"
  mkdir -p "$scratch" "corpus/$t"
  dict=()
  [ -f "$t.dict" ] && dict=("-dict=$t.dict")
  log="target/fuzz-$t.log"
  if cargo "${toolchain[@]}" fuzz run "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$seconds" "${dict[@]}" >"$log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "$log" || tail -n 2 "$log"
  else
    tail -n 60 "$log"
    echo "error: fuzz target $t failed (full output: fuzz/$log)" >&2
    exit 1
  fi
done
