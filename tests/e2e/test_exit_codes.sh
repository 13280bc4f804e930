#!/usr/bin/env bash
# Exit codes, as docs/OPERATIONS.md ("Errors") documents them: mlinkctl exits 0 when done and
# 1 on any error, usage errors included; mlinkd exits 2 on a configuration or usage error
# (0 for --help / --version). Every error goes to stderr with nothing on stdout; --help goes
# to stdout and names the exit codes. No root, no namespaces, no running agent: nothing here
# creates anything outside its temp dir (every config given to mlinkd fails before apply).
set -euo pipefail

BUILD=${MLINK_BUILD_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build}
MLINKCTL=$BUILD/mlinkctl
MLINKD=$BUILD/mlinkd
for b in "$MLINKCTL" "$MLINKD"; do
  [ -x "$b" ] || { echo "FAIL: $b not built (MLINK_BUILD_DIR=$BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/mlexit.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0

# expect WANT PATTERN CMD...: CMD exits WANT. An error (WANT != 0) prints a line matching the
# ERE PATTERN on stderr and nothing on stdout; a success prints PATTERN on stdout and nothing
# on stderr.
expect() {
  local want=$1 pattern=$2 rc=0 out err
  shift 2
  timeout 10 "$@" >"$TMP/stdout" 2>"$TMP/stderr" </dev/null || rc=$?
  out=$(cat "$TMP/stdout")
  err=$(cat "$TMP/stderr")
  local what bad=""
  what="$(basename "$1") ${*:2}"
  [ "$rc" -eq "$want" ] || bad="exit status: expected $want, got $rc"
  if [ "$want" -ne 0 ]; then
    grep -qE -- "$pattern" <<<"$err" || bad="${bad:+$bad; }stderr: expected /$pattern/"
    [ -z "$out" ] || bad="${bad:+$bad; }stdout: expected nothing (errors go to stderr)"
  else
    grep -qE -- "$pattern" <<<"$out" || bad="${bad:+$bad; }stdout: expected /$pattern/"
    [ -z "$err" ] || bad="${bad:+$bad; }stderr: expected nothing"
  fi
  if [ -n "$bad" ]; then
    printf 'FAIL  %-58s %s\n' "$what" "$bad" >&2
    printf '      stdout: %s\n      stderr: %s\n' "${out:0:400}" "${err:0:400}" >&2
    failures=$((failures + 1))
  else
    printf '  ok  %-58s exit %d: %s\n' "$what" "$rc" \
      "$(grep -m1 -E -- "$pattern" <<<"$([ "$want" -ne 0 ] && echo "$err" || echo "$out")")"
  fi
}

node="nosuch$$x$RANDOM"  # no agent has this id
mkdir "$TMP/run"         # a run dir with no control socket in it

echo "== mlinkctl: 0 ok, 1 any error"
expect 0 '^Exit status: 0 ok; 1 on any error' "$MLINKCTL" --help
expect 0 '^Usage: .*link' "$MLINKCTL" link --help
expect 1 '^mlinkctl: A subcommand is required' "$MLINKCTL"
expect 1 '^mlinkctl: .*not expected: frobnicate' "$MLINKCTL" frobnicate
expect 1 '^mlinkctl: .*--frobnicate' "$MLINKCTL" --frobnicate show
expect 1 '^mlinkctl: .*DEV is required' "$MLINKCTL" link del
expect 1 '^mlinkctl: .*args is required' "$MLINKCTL" flow get
expect 1 '^mlinkctl: A subcommand is required' "$MLINKCTL" link
expect 1 '^mlinkctl: .*not expected: frobnicate' "$MLINKCTL" link frobnicate
expect 1 '^mlinkctl: .*bogus.*not in' "$MLINKCTL" show bogus
expect 1 '^mlinkctl: --node: 1 required TEXT missing' "$MLINKCTL" --node
expect 1 "^mlinkctl: no running agent: connect /run/mlink/$node.sock" "$MLINKCTL" -n "$node" show
expect 1 "^mlinkctl: no running agent: connect .*/$node.sock" \
  "$MLINKCTL" -n "$node" link set eth0 weight 2
expect 1 "^mlinkctl: no running agent \\(no socket in $TMP/run\\)" \
  "$MLINKCTL" --run-dir "$TMP/run" show
expect 1 "^mlinkctl: open $TMP/mlink/$node/ml_peers: .*is mlinkd running" \
  "$MLINKCTL" -n "$node" --bpffs "$TMP" show maps

echo "== mlinkd: 0 --help / --version, 2 configuration or usage error"
# bad.toml: an unknown key on line 4, and a link on a device this host lacks (which would stop
# it before apply even if the key were accepted). nodev.toml: only the missing device.
write_config() {  # FILE [EXTRA NODE LINE]
  {
    echo '[node]'
    echo "id = \"$node\""
    echo 'ml_address = ["10.88.0.1/16"]'
    [ -n "${2:-}" ] && echo "$2"
    echo '[[link]]'
    echo 'device = "mlnosuch0"'
    echo '[[peer]]'
    echo 'ml_address = ["10.88.0.2"]'
    echo 'via = [ { device = "mlnosuch0", address = ["10.0.0.2"] } ]'
    printf '[bfd]\nallow_unauthenticated = true\n'
  } >"$1"
}
write_config "$TMP/bad.toml" 'colour = "blue"'
write_config "$TMP/nodev.toml"
expect 0 '^Exit status: 0 stopped cleanly' "$MLINKD" --help
expect 0 '[0-9]' "$MLINKD" --version
expect 2 '^mlinkd: --config is required' "$MLINKD"
expect 2 '^mlinkd: --config is required' "$MLINKD" --check
expect 2 '^mlinkd: .*frobnicate' "$MLINKD" frobnicate --config "$TMP/bad.toml" --check
expect 2 '^mlinkd: .*--frobnicate' "$MLINKD" --frobnicate --config "$TMP/bad.toml" --check
expect 2 '^mlinkd: .*--config' "$MLINKD" --check --config
expect 2 '^mlinkd: .*loud.*not in' "$MLINKD" --log-level loud --config "$TMP/bad.toml" --check
expect 2 "$TMP/missing.toml" "$MLINKD" --config "$TMP/missing.toml" --check
expect 2 'bad\.toml:4(:[0-9]+)?: node\.colour: ' "$MLINKD" --config "$TMP/bad.toml" --check
expect 2 'bad\.toml:4(:[0-9]+)?: node\.colour: ' "$MLINKD" --config "$TMP/bad.toml"
expect 2 'nodev\.toml:[0-9]+(:[0-9]+)?: link\[0\]\.device: ' \
  "$MLINKD" --config "$TMP/nodev.toml" --check

if [ "$failures" -ne 0 ]; then
  echo "FAIL: exit codes: $failures case(s) above did not match" >&2
  exit 1
fi
echo "PASS: exit codes"
