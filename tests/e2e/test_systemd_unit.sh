#!/usr/bin/env bash
# The systemd unit (issue 5): `systemd-analyze verify` accepts dist/systemd/mlinkd.service
# (with ExecStart pointed at this build), it is Type=notify (mlinkd sends READY=1 once it
# runs) and restarts on failure within the 3 s its peers wait; `systemd-analyze security`
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
grep -q 'sd_notify(0, "READY=1")' "$(dirname "$0")/../../control/agent/agent.cpp" ||
  bed_die "mlinkd does not send READY=1"
if systemd-analyze security --offline=yes "$BED_TMP/units/mlinkd.service" >"$BED_TMP/security.txt" 2>&1; then
  echo "  systemd-analyze security: $(grep -o 'Overall exposure level.*' "$BED_TMP/security.txt" | head -1)"
fi
echo "PASS: systemd unit"
