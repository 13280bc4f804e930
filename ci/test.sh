#!/usr/bin/env bash
# The test command: builds mlink twice (release and ASan+UBSan) and runs the
# whole suite (unit, netlink, BPF_PROG_TEST_RUN, netns end-to-end) in both.
# Needs root for everything but the unit tests; installs the Debian packages
# it needs when one is missing. Under CI=true a privileged test that would
# skip fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh --check all >/dev/null || bash ci/install-deps.sh all
JOBS=${JOBS:-$(nproc)}
if [ "${CI:-}" = "true" ]; then export MLINK_REQUIRE_PRIVILEGED=1; fi

run_suite() {  # build dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  local log="$dir/ctest.log"
  # shellcheck disable=SC2086 # CTEST_EXTRA is a list of ctest arguments
  (cd "$dir" && ctest --output-on-failure --timeout 900 ${CTEST_EXTRA:-} 2>&1) | tee "$log"
  local rc=${PIPESTATUS[0]}
  if grep -qE '\*\*\*Skipped|Not Run' "$log" && [ "${MLINK_REQUIRE_PRIVILEGED:-}" = "1" ]; then
    echo "ci/test: tests were skipped on a machine that can run them" >&2
    return 1
  fi
  return "$rc"
}

echo "ci/test: clang-format check"
git ls-files 'control/*.cpp' 'control/*.h' 'proto/*.cpp' 'proto/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'fuzz/*.cpp' |
  xargs clang-format --dry-run --Werror

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Sanitized agents cost several times the CPU: the cluster test runs 24 of them
# there (64 in the release suite), which two cores carry without BFD flapping.
# Some e2e tests run in the release suite only (label release_only: tests/CMakeLists.txt).
CTEST_EXTRA="-LE release_only" CLUSTER_HOSTS=${CLUSTER_HOSTS_ASAN:-24} ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DMLINK_SANITIZE=ON

# Every fuzz target (libFuzzer, clang, ASan+UBSan), bounded, seeded from the
# directory its source names in a "// seeds: DIR" line (.hex vectors become bytes).
run_fuzzers() {
  local secs=${FUZZ_SECONDS:-30} src name seeds corpus
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMLINK_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  for src in fuzz/fuzz_*.cpp; do
    name=$(basename "$src" .cpp)
    seeds=$(sed -n 's|^// seeds: *||p' "$src" | head -1)
    [ -n "$seeds" ] && [ -d "$seeds" ] || { echo "ci/test: $src names no seed directory" >&2; return 1; }
    cmake --build build-fuzz -j "$JOBS" --target "$name"
    corpus=$(mktemp -d)
    python3 - "$seeds" "$corpus" <<'PY'
import pathlib, re, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(p for p in src.iterdir() if p.is_file()):
    if f.suffix == ".hex":
        text = re.sub(r"#.*", "", f.read_text())
        (dst / f.stem).write_bytes(bytes.fromhex("".join(text.split())))
    elif f.suffix not in (".py", ".md"):
        (dst / f.name).write_bytes(f.read_bytes())
PY
    echo "ci/test: fuzzing $name for ${secs}s"
    "build-fuzz/fuzz/$name" -max_total_time="$secs" -print_final_stats=1 "$corpus" 2>&1 | tail -12
    local rc=${PIPESTATUS[0]}
    rm -rf "$corpus"
    [ "$rc" -eq 0 ] || { echo "ci/test: $name failed" >&2; return 1; }
  done
}
run_fuzzers
echo "ci/test: all suites passed"
