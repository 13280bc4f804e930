#!/usr/bin/env bash
# The systemd units (issues 5, 12). `systemd-analyze verify` accepts dist/systemd/mlinkd.service
# and mlinkd-cleanup.service (ExecStart pointed at this build); mlinkd.service is Type=notify,
# restarts on failure within the 3 s its peers wait, has a watchdog, no CAP_SYS_ADMIN, a
# system call filter and hands a crash loop to the cleanup unit (OnFailure=).
# systemd is not PID 1 here, so mlinkd is run as the unit would run it: with exactly the
# unit's capability bounding set, no_new_privs and its SystemCallFilter= (expanded by
# systemd-analyze, loaded by lib/seccomp_exec.py, any other call kills it), a NOTIFY_SOCKET
# and WATCHDOG_USEC/WATCHDOG_PID. Then: READY=1, its link comes up with a peer, WATCHDOG=1
# keeps coming and stops while the agent is stopped (SIGSTOP); killed (as the watchdog
# would) and restarted the same way it adopts and is ready again, and it stops cleanly.
# `systemd-analyze security` prints both units' exposure.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
command -v systemd-analyze >/dev/null || bed_die "systemd-analyze missing (Debian package systemd)"
command -v setpriv >/dev/null || bed_die "setpriv missing (Debian package util-linux)"
command -v capsh >/dev/null || bed_die "capsh missing (Debian package libcap2-bin)"
python3 -c 'import ctypes; ctypes.CDLL("libseccomp.so.2")' 2>/dev/null ||
  bed_die "libseccomp.so.2 missing (Debian package libseccomp2)"
bed_init

dist=$(cd "$(dirname "$0")/../.." && pwd)/dist/systemd
unit=$dist/mlinkd.service
cleanup=$dist/mlinkd-cleanup.service
mkdir -p "$BED_TMP/units"
for f in "$unit" "$cleanup"; do
  # The man: links resolve once the package is installed (tests/e2e/test_package.sh checks
  # them there); verify would run man(1) for them here.
  sed -e "s|/usr/sbin/mlinkd|$MLINKD|g" -e '/^Documentation=/s/man:[^ ]* //g' "$f" \
    >"$BED_TMP/units/${f##*/}"
done
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$BED_TMP/units/mlinkd.service" \
  "$BED_TMP/units/mlinkd-cleanup.service" 2>&1) || bed_die "systemd-analyze verify failed: $out"
# verify warns, without failing, about things it cannot resolve outside a booted system
# (e.g. the network.target dependency); anything naming our units' settings is a failure.
if grep -E "mlinkd(-cleanup)?\.service:[0-9]+:" <<<"$out"; then bed_die "the units have problems: $out"; fi
echo "  systemd-analyze verify (both units): ok"

# unit_values FILE KEY: the values of KEY= in FILE, one line per assignment.
unit_values() { sed -n "s/^$2=//p" "$1"; }
# unit_section_has FILE SECTION KEY: KEY= is set in [SECTION].
unit_section_has() { awk -v s="[$2]" -v k="$3=" '/^\[/ {in_s = ($0 == s)} in_s && index($0, k) == 1 {f = 1} END {exit !f}' "$1"; }
# usec SPAN: a systemd time span in microseconds.
usec() { systemd-analyze timespan "$1" | awk '$1 == "μs:" {print $2}'; }

grep -qx "Type=notify" "$unit" || bed_die "not Type=notify"
grep -qx "Restart=on-failure" "$unit" || bed_die "no Restart=on-failure"
grep -qx "RestartSec=1s" "$unit" || bed_die "RestartSec is not 1s"
wd=$(unit_values "$unit" WatchdogSec)
[ -n "$wd" ] || bed_die "no WatchdogSec="
# A stuck loop must be detected and restarted before its peers drop the links (3 s).
(($(usec "$wd") + $(usec 1s) < $(usec 3s))) || bed_die "WatchdogSec=$wd + RestartSec=1s is not under 3 s"
for k in StartLimitIntervalSec StartLimitBurst OnFailure; do
  unit_section_has "$unit" Unit "$k" || bed_die "no $k= in [Unit]"
done
[ "$(unit_values "$unit" OnFailure)" = "mlinkd-cleanup.service" ] || bed_die "OnFailure= is not mlinkd-cleanup.service"
[ -f "$cleanup" ] || bed_die "OnFailure= names $cleanup, which does not exist"
grep -qx "Type=oneshot" "$cleanup" || bed_die "the cleanup unit is not Type=oneshot"
unit_values "$cleanup" ExecStart | grep -q -- "--cleanup" || bed_die "the cleanup unit does not run mlinkd --cleanup"
caps=$(unit_values "$unit" CapabilityBoundingSet)
[ -n "$caps" ] || bed_die "no CapabilityBoundingSet="
if grep -qw CAP_SYS_ADMIN <<<"$caps"; then bed_die "the unit keeps CAP_SYS_ADMIN"; fi
unit_values "$unit" SystemCallFilter | grep -q . || bed_die "no SystemCallFilter="
for k in CapabilityBoundingSet SystemCallFilter; do
  [ "$(unit_values "$unit" "$k")" = "$(unit_values "$cleanup" "$k")" ] ||
    bed_die "$k= differs between the units (the cleanup undoes what the agent made)"
done
echo "  unit: WatchdogSec=$wd, OnFailure=mlinkd-cleanup.service, CapabilityBoundingSet=$caps"

# unit_syscalls ITEM...: the system calls ITEM... (names or @groups) name, groups expanded.
unit_syscalls() {
  local item
  for item in "$@"; do
    if [[ $item == @* ]]; then
      local -a inner
      mapfile -t inner < <(systemd-analyze syscall-filter --no-pager "$item" |
        awk 'NR > 1 && NF == 1 && $1 !~ /^#/ {print $1}')
      ((${#inner[@]})) || bed_die "systemd-analyze knows no group $item"
      unit_syscalls "${inner[@]}"
    else
      echo "$item"
    fi
  done
}
# The filter as systemd builds it: the first SystemCallFilter= is an allow-list, later ones
# add to it or (~) take from it, in order; a few calls are always allowed (systemd.exec(5)).
declare -A allow=()
first=1
while read -r line; do
  # shellcheck disable=SC2086 # the entries are space-separated words
  if [[ $line == "~"* ]]; then
    ((first == 0)) || bed_die "the filter starts with a deny-list: not what this test mirrors"
    for s in $(unit_syscalls ${line#\~}); do unset "allow[$s]"; done
  else
    for s in $(unit_syscalls $line); do allow[$s]=1; done
  fi
  first=0
done < <(unit_values "$unit" SystemCallFilter)
for s in execve exit exit_group getrlimit rt_sigreturn sigreturn; do allow[$s]=1; done
[ -n "${allow[bpf]:-}" ] || bed_die "the filter does not allow bpf()"
bound=$(tr ' ' '\n' <<<"$caps" | grep . | sed 's/^CAP_/+/' | tr '[:upper:]' '[:lower:]' | paste -sd,)
echo "  running mlinkd with bounding set $bound, no_new_privs, ${#allow[@]} system calls allowed"

# start_confined LOG CONFIG: mlinkd in host a as the unit runs it; PID in ML_PID_a. The bash
# in front only exports its own PID (which exec keeps) as WATCHDOG_PID, as systemd does.
# A sanitized build makes system calls of its own that the unit's filter (rightly) refuses, and
# spins on them: there the filter is left out (the release suite runs it), caps and
# no_new_privs stay.
SECCOMP=(python3 "$BED_LIB_DIR/seccomp_exec.py" kill "${!allow[@]}" --)
# (grep without -q: it reads all of ldd's output, which under pipefail an early exit would
# turn into a SIGPIPE failure; this once put the filter on a sanitized agent.)
if ldd "$MLINKD" | grep 'libasan\|libubsan' >/dev/null; then
  SECCOMP=()
  echo "  sanitized build: mlinkd runs without the system call filter (the release suite checks it)"
fi
start_confined() {
  NOTIFY_SOCKET=$notify WATCHDOG_USEC=200000 bed_bg a "$1" bash -c 'export WATCHDOG_PID=$$; exec "$@"' bash \
    setpriv --bounding-set "-all,$bound" --no-new-privs "${SECCOMP[@]}" "$MLINKD" --config "$2"
  ML_PID_a=$BED_LAST_PID
}
# count WORD: datagrams so far that carried WORD (e.g. READY=1).
count() { grep -cw -- "$1" "$BED_TMP/notify.log" || true; }
# wait_for WHAT SECONDS CMD...: poll CMD until true; fail with WHAT after SECONDS, or at once
# if the agent died.
wait_for() {
  local what=$1 limit=$2 i
  shift 2
  for ((i = 0; i < limit * 20; i++)); do
    "$@" && return 0
    kill -0 "$ML_PID_a" 2>/dev/null || { cat "$BED_TMP/$log" >&2; bed_die "mlinkd died waiting for $what"; }
    sleep 0.05
  done
  cat "$BED_TMP/notify.log" "$BED_TMP/$log" >&2
  bed_die "no $what after $limit s"
}
at_least() { (($(count "$1") >= $2)); }

ml_two_hosts 1
# Our NOTIFY_SOCKET: every datagram, one line each.
notify="$BED_TMP/notify.sock"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)' "$notify" >"$BED_TMP/notify.log" 2>&1 &
BED_PIDS+=("$!")
for ((i = 0; i < 50; i++)); do [ -S "$notify" ] && break; sleep 0.05; done
[ -S "$notify" ] || bed_die "the notify listener did not start"

log=mlinkd-a-first.log
start_confined "$log" "$(ml_config a 1 2 1)"
# If the test fails while the agent is stopped, let cleanup's SIGTERM reach it.
bed_on_cleanup "kill -CONT $ML_PID_a"
wait_for READY=1 10 at_least READY=1 1
# The process is the agent (bash, setpriv and python exec'd into it) with the unit's sandbox.
st=/proc/$ML_PID_a/status
[ "$(readlink "/proc/$ML_PID_a/exe")" = "$(readlink -f "$MLINKD")" ] || bed_die "PID $ML_PID_a is not mlinkd"
eff=$(capsh --decode="$(awk '/^CapEff/ {print $2}' "$st")" | sed 's/.*=//')
bnd=$(capsh --decode="$(awk '/^CapBnd/ {print $2}' "$st")" | sed 's/.*=//')
norm() { tr ',' '\n' <<<"$1" | tr '[:lower:]' '[:upper:]' | sort | paste -sd' '; }
[ "$(norm "$bnd")" = "$(norm "${caps// /,}")" ] || bed_die "mlinkd's bounding set is $bnd, the unit's $caps"
[ "$(norm "$eff")" = "$(norm "${caps// /,}")" ] || bed_die "mlinkd's effective capabilities are $eff"
grep -qP '^NoNewPrivs:\t1$' "$st" || bed_die "mlinkd runs without no_new_privs"
[ ${#SECCOMP[@]} = 0 ] || grep -qP '^Seccomp:\t2$' "$st" || bed_die "mlinkd runs without a seccomp filter"
echo "  mlinkd (PID $ML_PID_a): capabilities $eff, seccomp filter on, sent READY=1"

# Its link comes up with a peer: BPF load, tc attach, the tun, BFD, all within the sandbox.
ml_start b "$(ml_config b 2 1 1)"
ml_wait_links a b
echo "  link up with the peer"

# The loop pings the watchdog: WATCHDOG_USEC=200 ms, so sd-event sends every 100-150 ms.
ready_at=$(count WATCHDOG=1)
wait_for "3 WATCHDOG=1 after READY=1" 5 at_least WATCHDOG=1 $((ready_at + 3))
echo "  WATCHDOG=1 keeps coming ($(count WATCHDOG=1) so far)"
# A stopped loop sends none. Once the process is stopped, a marker of ours, queued behind any
# ping sent before it, shows when the listener has read them all.
kill -STOP "$ML_PID_a"
stopped() { [ "$(awk '{print $3}' "/proc/$ML_PID_a/stat")" = T ]; }
wait_for "stopped state" 5 stopped
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"MARK=1", sys.argv[1])' "$notify"
wait_for "our marker" 5 at_least MARK=1 1
before=$(count WATCHDOG=1)
# The window measured: 5 watchdog periods, in which a live loop would have sent 6-10.
sleep 1
after=$(count WATCHDOG=1)
[ "$after" -eq "$before" ] || bed_die "$((after - before)) WATCHDOG=1 from a stopped mlinkd"
kill -CONT "$ML_PID_a"
wait_for "WATCHDOG=1 after SIGCONT" 5 at_least WATCHDOG=1 $((after + 1))
echo "  stopped: no WATCHDOG=1 for 1 s; continued: pings again"

# What the watchdog does to a stuck agent (SIGABRT; SIGKILL here: no core), then the
# restart: the new agent, in the same sandbox, adopts the datapath and is ready.
kill -KILL "$ML_PID_a"
wait "$ML_PID_a" 2>/dev/null || true
bed__forget_pid "$ML_PID_a"
ready_before=$(count READY=1)
log=mlinkd-a.log
start_confined "$log" "$BED_TMP/a.toml"
bed_on_cleanup "kill -CONT $ML_PID_a"
wait_for "READY=1 from the restarted agent" 10 at_least READY=1 $((ready_before + 1))
grep -q "adopted ml0" "$BED_TMP/$log" || { cat "$BED_TMP/$log" >&2; bed_die "the restarted agent did not adopt"; }
ml_wait_links a
echo "  killed and restarted in the sandbox: adopted, ready, link up"
# A clean stop removes everything, within the filter too.
ml_stop a
grep -q "removed everything this agent created" "$BED_TMP/$log" || bed_die "no clean teardown"
ml_stop b

for f in mlinkd mlinkd-cleanup; do
  if systemd-analyze security --offline=yes "$BED_TMP/units/$f.service" >"$BED_TMP/security-$f.txt" 2>&1; then
    echo "  systemd-analyze security $f: $(grep -o 'Overall exposure level.*' "$BED_TMP/security-$f.txt" | head -1)"
  fi
done
echo "PASS: systemd unit"
