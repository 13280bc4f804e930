#!/usr/bin/env bash
# The systemd unit (issue 5): `systemd-analyze verify` accepts dist/systemd/mlinkd.service
# (with ExecStart pointed at this build), it is Type=notify and mlinkd, run with a
# NOTIFY_SOCKET as systemd would, does send READY=1; it restarts on failure within the 3 s its peers wait; `systemd-analyze security`
# prints its exposure (kept in the temp dir).
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
command -v systemd-analyze >/dev/null || bed_die "systemd-analyze missing (Debian package systemd)"
bed_init

unit=$(cd "$(dirname "$0")/../.." && pwd)/dist/systemd/mlinkd.service
mkdir -p "$BED_TMP/units"
sed "s|/usr/sbin/mlinkd|$MLINKD|g" "$unit" >"$BED_TMP/units/mlinkd.service"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$BED_TMP/units/mlinkd.service" 2>&1) ||
  bed_die "systemd-analyze verify failed: $out"
# verify warns, without failing, about things it cannot resolve outside a booted system
# (e.g. the network.target dependency); anything naming our unit's settings is a failure.
if grep -E "mlinkd.service:[0-9]+:" <<<"$out"; then bed_die "the unit has problems: $out"; fi
echo "  systemd-analyze verify: ok"
grep -qx "Type=notify" "$unit" || bed_die "not Type=notify"
grep -qx "Restart=on-failure" "$unit" || bed_die "no Restart=on-failure"
grep -qx "RestartSec=1s" "$unit" || bed_die "RestartSec is not 1s"
# Type=notify holds only if mlinkd really tells systemd it is ready: run it with a
# NOTIFY_SOCKET of our own, as systemd would, and wait for READY=1.
ml_two_hosts 1
notify="$BED_TMP/notify.sock"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(10)
while True:
    msg = s.recv(4096).decode()
    print(msg.replace("\n", " "), flush=True)
    if "READY=1" in msg.split("\n"):
        break' "$notify" >"$BED_TMP/notify.log" 2>&1 &
listener=$!
BED_PIDS+=("$listener")
for ((i = 0; i < 50; i++)); do [ -S "$notify" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$notify bed_bg a mlinkd-a.log "$MLINKD" --config "$(ml_config a 1 2 1)"
ML_PID_a=$BED_LAST_PID
wait "$listener" || { cat "$BED_TMP/notify.log" "$BED_TMP/mlinkd-a.log" >&2; bed_die "no READY=1 from mlinkd"; }
bed__forget_pid "$listener"
echo "  mlinkd sent: $(cat "$BED_TMP/notify.log")"
ml_stop a
if systemd-analyze security --offline=yes "$BED_TMP/units/mlinkd.service" >"$BED_TMP/security.txt" 2>&1; then
  echo "  systemd-analyze security: $(grep -o 'Overall exposure level.*' "$BED_TMP/security.txt" | head -1)"
fi
echo "PASS: systemd unit"
