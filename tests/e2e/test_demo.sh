#!/usr/bin/env bash
# ci/demo.sh, the README's first command: run once to its end, not on a terminal (frames
# as lines), and check its summary's figures are there and sane (every link carried
# traffic, both ends took the failed link out within 1 s and back after the repair; the
# longest stall is reported); then interrupt two runs and check nothing of either is left:
# SIGINT to the whole process group (what Ctrl-C does) during the failure, and SIGINT to
# the script alone while the agents start.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/e2e/lib/bed.sh"   # bed_require_root only: the demo makes its own bed
bed_require_root bpftool cmake
export MLINK_BUILD_DIR=${MLINK_BUILD_DIR:-$ROOT/build}

TMP=$(mktemp -d /tmp/mltestdemo.XXXXXX)
DEMO_PID=
fails=0
on_exit() {
  local rc=$?
  if [[ -n $DEMO_PID ]] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill -INT -- "-$DEMO_PID" 2>/dev/null || true
    timeout 30 tail --pid="$DEMO_PID" -f /dev/null || kill -KILL -- "-$DEMO_PID" 2>/dev/null || true
  fi
  ((rc == 0)) && rm -rf "$TMP" || echo "test_demo: files kept in $TMP" >&2
}
trap on_exit EXIT

fail() { echo "  FAIL: $*" >&2; fails=$((fails + 1)); }
now_ms() { date +%s%3N; }

# start_demo NAME: ci/demo.sh in the background, in a session (and process group) of its
# own, as a terminal's foreground job would be; output in $TMP/NAME.{out,err}. SIGINT back
# to its default: a shell starts a background job with it ignored, and a shell cannot trap
# a signal ignored when it started.
start_demo() {
  setsid env --default-signal=INT bash "$ROOT/ci/demo.sh" >"$TMP/$1.out" 2>"$TMP/$1.err" </dev/null &
  DEMO_PID=$!
}

# wait_for NAME REGEX SECS: until the demo's stdout or stderr has a line matching REGEX.
wait_for() {
  local deadline=$(($(now_ms) + $3 * 1000))
  until grep -qE "$2" "$TMP/$1.out" "$TMP/$1.err" 2>/dev/null; do
    kill -0 "$DEMO_PID" 2>/dev/null || { cat "$TMP/$1.err" >&2; bed_die "$1: demo exited before /$2/"; }
    (($(now_ms) < deadline)) || bed_die "$1: no /$2/ within $3 s"
    sleep 0.1
  done
}

# wait_demo SECS: the demo's exit status (it is killed, and the test fails, after SECS).
wait_demo() {
  local rc=0
  if ! timeout "$1" tail --pid="$DEMO_PID" -f /dev/null; then
    kill -KILL -- "-$DEMO_PID" 2>/dev/null || true
    bed_die "the demo did not end within $1 s"
  fi
  wait "$DEMO_PID" || rc=$?
  DEMO_PID=
  return "$rc"
}

run_id() { sed -n 's/^\[bed \([0-9a-f]\{6\}\)\] run id .*/\1/p' "$TMP/$1.err" | head -1; }

# left_behind RUNID SID NS_INODES...: what of that run still exists, one line per thing.
left_behind() {
  local id=$1 sid=$2 ino
  shift 2
  ip netns list | awk -v p="ml$id" 'index($1, p) == 1 { print "netns " $1 }'
  ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort >"$TMP/links.after"
  comm -13 "$TMP/links.before" "$TMP/links.after" | sed 's/^/root netns device /'
  find /sys/fs/bpf/mlink /run/mlink -maxdepth 1 -name "$id*" 2>/dev/null | sed 's/^/left /'
  for ino in "$@"; do
    find /sys/fs/bpf/ml-fault -maxdepth 1 -name "$ino-*" 2>/dev/null | sed 's/^/pin /'
  done
  find /tmp -maxdepth 1 -name "mlbed.$id.*" | sed 's/^/temp dir /'
  ps -e -o pid=,sid=,args= | awk -v s="$sid" -v id="$id" -v me="$$" \
    '($2 == s || index($0, id)) && $1 != me && $3 != "ps" && $3 != "awk" { print "process " $0 }'
}

check_nothing_left() {  # NAME SID NS_INODES...
  local name=$1 id what
  shift
  id=$(run_id "$name")
  [[ -n $id ]] || { fail "$name: no run id in the demo's output"; return; }
  # The demo's last children may still be exiting (a zombie not yet reaped) when its main
  # process has ended: poll until nothing is left, 5 s at most.
  local deadline=$(($(now_ms) + 5000))
  while what=$(left_behind "$id" "$@") && [[ -n $what ]] && (($(now_ms) < deadline)); do
    sleep 0.1
  done
  if [[ -n $what ]]; then
    fail "$name: left behind by run $id:"
    sed 's/^/    /' <<<"$what" >&2
  else
    echo "  $name: nothing of run $id left (namespaces, devices, pins, /run/mlink, temp dir, processes)"
  fi
}

ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort >"$TMP/links.before"

echo "== a whole run (not a terminal: frames as lines)"
t0=$(now_ms)
start_demo full
sid=$DEMO_PID
rc=0
wait_demo 300 || rc=$?
echo "  demo exited $rc after $((($(now_ms) - t0) / 1000)) s"
((rc == 0)) || { tail -20 "$TMP/full.out" "$TMP/full.err" >&2; bed_die "the demo failed"; }
sed -n '/^== summary/,$p' "$TMP/full.out" | sed 's/^/  /'
out=$TMP/full.out
frames=$(grep -c '^\[ *[0-9.]* s\] Mbit/s a: eth0 ' "$out" || true)
((frames >= 20)) || fail "only $frames view frames printed (one every 0.5 s expected)"
for key in "1/4 one link" "2/4 mlink" "3/4 one-way" "4/4 repair"; do
  grep -q "^== t=.*$key" "$out" || fail "the view printed no phase '$key'"
done
single=$(sed -n 's/^single link (eth0, iperf3 -P8): \([0-9.]*\) Mbit\/s$/\1/p' "$out")
ml=$(sed -n 's/^mlink over 3 links, before the failure: \([0-9.]*\) Mbit\/s.*/\1/p' "$out")
awk -v s="${single:-0}" 'BEGIN { exit !(s > 10) }' || fail "single-link throughput '$single' not a positive figure"
# Not asserted above the single link: on two busy shared cores the iperf3 server is starved
# for seconds at a time; that every link carried traffic is the behaviour checked.
awk -v m="${ml:-0}" 'BEGIN { exit !(m > 10) }' || fail "mlink's throughput '$ml' not a positive figure"
per_link=$(sed -n 's/^bytes sent per link by a.s datapath: //p' "$out")
for dev in eth0 eth1 eth2; do
  mb=$(grep -oE "$dev [0-9]+ MB" <<<"$per_link" | awk '{ print $2 }')
  ((${mb:-0} >= 1)) || fail "$dev carried no traffic over ml0 ('$per_link')"
done
for h in a b; do
  line=$(grep "^one-way failure of eth1 detected by $h: " "$out" || true)
  det=$(sed -n 's/.* detected by .: \([0-9]*\) ms after the fault.*/\1/p' <<<"$line")
  back=$(sed -n 's/.*back after the repair: \([0-9]*\) ms$/\1/p' <<<"$line")
  [[ -n $det ]] && ((det < 1000)) || fail "$h: failure not detected within 1 s ('$line')"
  [[ -n $back ]] || fail "$h: eth1 not seen back after the repair ('$line')"
done
stall=$(sed -n 's/^longest stall of a stream .*: \([0-9.]*\) s$/\1/p' "$out")
# Reported, not asserted: the failover tests assert no stall >= 1 s on this scenario; the
# demo's job here is the show and its cleanup (one run in four stalled a stream 1.4 s, once,
# on a busy machine, after the repair).
[[ -n $stall ]] || fail "no longest stall in the summary"
echo "  longest stall in the summary: ${stall:-?} s"
check_nothing_left full "$sid"

echo "== Ctrl-C (SIGINT to the process group) during the failure"
start_demo group
sid=$DEMO_PID
wait_for group "3/4 one-way" 120
id=$(run_id group)
inodes=$(stat -L -c %i /run/netns/ml"$id"a /run/netns/ml"$id"b 2>/dev/null) || fail "group: namespaces of run $id not found"
sleep 0.$((RANDOM % 10))  # somewhere in the first second of the failure
kill -INT -- "-$DEMO_PID"
rc=0
wait_demo 60 || rc=$?
((rc == 130)) || fail "group: the interrupted demo exited $rc, not 130"
# shellcheck disable=SC2086  # one inode per word
check_nothing_left group "$sid" $inodes

echo "== SIGINT to the script alone while the agents start"
start_demo alone
sid=$DEMO_PID
wait_for alone "== mlinkd on both" 120
kill -INT "$DEMO_PID"
rc=0
wait_demo 60 || rc=$?
((rc == 130)) || fail "alone: the interrupted demo exited $rc, not 130"
check_nothing_left alone "$sid"

((fails == 0)) || bed_die "test_demo: $fails check(s) failed"
echo "PASS: the demo's summary is sane and an interrupted demo leaves nothing"
