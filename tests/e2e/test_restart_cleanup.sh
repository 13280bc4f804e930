#!/usr/bin/env bash
# What a killed agent leaves behind (issue 12, "Hostile neighbours and faults"):
#  1. sysctls: mlinkd SIGKILLed, started again (it adopts), stopped cleanly -> the links'
#     and the `all` sysctls are back to their values from before the first agent (the
#     originals are kept in /run/mlink/<id>.sysctl.json; before, the restarted agent took
#     mlink's own values for the originals and left rp_filter=2 / arp_announce=2).
#  2. mlinkd --cleanup after a SIGKILL removes ml0, the links' programs, the pins, the
#     managed neighbours, the BFD state and restores the sysctls; a second one is a no-op
#     success; it is refused (exit 1) while an agent of the node id runs.
#  3. [bfd] enabled = false with no /run/mlink (a fresh /run, as outside systemd): the
#     control socket works.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root bpftool
bed_init

ml_two_hosts 2
id=$(ml_node_id b)
run=/run/mlink
bed_on_cleanup "rm -f $run/$id.sysctl.json $run/$id.bfd.json $run/$id.sock"

# Values mlink would never set (it sets 2), so a leftover is told from a restore.
keys=(all/arp_announce eth0/arp_announce eth1/arp_announce eth0/rp_filter eth1/rp_filter)
originals() { bed_sysctl b net.ipv4.conf.all.arp_announce=1 net.ipv4.conf.eth0.arp_announce=1 \
  net.ipv4.conf.eth1.arp_announce=0 net.ipv4.conf.eth0.rp_filter=1 net.ipv4.conf.eth1.rp_filter=0; }
sysctls() {
  local k
  for k in "${keys[@]}"; do printf '%s=%s ' "$k" "$(bed_exec b cat "/proc/sys/net/ipv4/conf/$k")"; done
}
originals
want=$(sysctls)

# wait_ctl HOST: until the agent answers on its control socket (5 s at most).
wait_ctl() {
  local i
  for ((i = 0; i < 50; i++)); do
    bed_exec "$1" "$MLINKCTL" -n "$(ml_node_id "$1")" show >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$BED_TMP/mlinkd-$1.log" >&2
  bed_die "no agent answers on the control socket of $1"
}
# kill_b: SIGKILL b's agent (no cleanup runs).
kill_b() {
  kill -KILL "$ML_PID_b"
  wait "$ML_PID_b" 2>/dev/null || true
  bed__forget_pid "$ML_PID_b"
  cat "$BED_TMP/mlinkd-b.log" >>"$BED_TMP/mlinkd-b-killed.log"
}
# cleanup_b: mlinkd --cleanup in b; its status in RC, stderr in $BED_TMP/cleanup.log.
cleanup_b() {
  RC=0
  bed_exec b timeout 30 "$MLINKD" --config "$cfg" --cleanup 2>"$BED_TMP/cleanup.log" || RC=$?
  sed 's/^/    | /' "$BED_TMP/cleanup.log"
}

echo "== 1. SIGKILL, restart (adopts), clean stop: sysctls as before the first agent"
cfg=$(ml_config b 2 1 2 'rx_mode = "loose"')
ml_start b "$cfg"
wait_ctl b
changed=$(sysctls)
echo "  before: $want"
echo "  running: $changed"
[ "$changed" = "all/arp_announce=2 eth0/arp_announce=2 eth1/arp_announce=2 eth0/rp_filter=2 eth1/rp_filter=2 " ] ||
  bed_die "mlinkd did not set the sysctls: $changed"
[ -s "$run/$id.sysctl.json" ] || bed_die "no $run/$id.sysctl.json while the agent runs"
kill_b
ml_start b "$cfg"
wait_ctl b
grep -q "adopted ml0" "$BED_TMP/mlinkd-b.log" || bed_die "the restarted agent did not adopt ml0"
ml_stop b
got=$(sysctls)
echo "  after the clean stop: $got"
[ "$got" = "$want" ] || bed_die "sysctls not restored after SIGKILL + restart + stop: $got (want $want)"
[ ! -e "$run/$id.sysctl.json" ] || bed_die "$run/$id.sysctl.json left after a clean stop"

echo "== 2. SIGKILL, then mlinkd --cleanup"
cfg=$(ml_config b 2 1 2)
ml_start b "$cfg"
wait_ctl b
for ((i = 0; i < 50; i++)); do  # BFD state is checkpointed every second
  [ -e "$run/$id.bfd.json" ] && bed_exec b ip neigh show dev eth1 | grep -q managed && break
  sleep 0.1
done
[ -e "$run/$id.bfd.json" ] || bed_die "no BFD state file after 5 s"
managed() { bed_exec b ip neigh show | grep -c managed || true; }
filters() { for d in eth0 eth1; do bed_exec b tc filter show dev "$d" ingress; done | grep -c ml_ingress || true; }
echo "  running: ml0 $(bed_exec b ip -br link show ml0 | awk '{print $1}'), $(managed) managed neighbours," \
  "$(filters) ingress programs, pins $(ls "/sys/fs/bpf/mlink/$id" | wc -l)"
[ "$(managed)" -ge 2 ] || bed_die "expected managed neighbour entries on b"
[ "$(filters)" = 2 ] || bed_die "expected an ingress program on each link"

# Refused while the agent runs, and the agent keeps running.
cleanup_b
[ "$RC" = 1 ] || bed_die "--cleanup with a running agent exited $RC, want 1"
grep -q "is running" "$BED_TMP/cleanup.log" || bed_die "--cleanup did not say an agent runs"
bed_exec b "$MLINKCTL" -n "$id" show >/dev/null || bed_die "the agent stopped answering after a refused --cleanup"
bed_exec b ip link show ml0 >/dev/null 2>&1 || bed_die "a refused --cleanup removed ml0"

kill_b
cleanup_b
[ "$RC" = 0 ] || bed_die "--cleanup exited $RC"
! bed_exec b ip link show ml0 >/dev/null 2>&1 || bed_die "ml0 left after --cleanup"
[ ! -e "/sys/fs/bpf/mlink/$id" ] || bed_die "pins left: $(ls "/sys/fs/bpf/mlink/$id")"
[ "$(filters)" = 0 ] || bed_die "ingress programs left on the links"
[ -z "$(bed_exec b tc qdisc show dev eth0 | grep clsact)" ] || bed_die "clsact left on eth0"
[ "$(managed)" = 0 ] || bed_die "managed neighbours left: $(bed_exec b ip neigh show | grep managed)"
for f in sysctl.json bfd.json sock; do [ ! -e "$run/$id.$f" ] || bed_die "$run/$id.$f left"; done
got=$(sysctls)
echo "  after --cleanup: $got"
[ "$got" = "$want" ] || bed_die "sysctls not restored by --cleanup: $got (want $want)"
cleanup_b
[ "$RC" = 0 ] || bed_die "a second --cleanup exited $RC"
grep -q "nothing left behind" "$BED_TMP/cleanup.log" || bed_die "a second --cleanup found something"
[ "$(sysctls)" = "$want" ] || bed_die "a second --cleanup changed sysctls"

echo "== 3. [bfd] enabled = false, no /run/mlink: the control socket works"
cfg=$(ml_config b 2 1 2)
echo "enabled = false" >>"$cfg"  # [bfd] is the config's last table
# A private mount namespace with an empty /run: no /run/mlink, as on a host where no agent
# ran yet (and nothing of the other tests' agents' in the way).
bed_bg b mlinkd-b.log unshare --mount --propagation private \
  sh -c 'mount -t tmpfs mlrun /run && exec "$0" --config "$1"' "$MLINKD" "$cfg"
ML_PID_b=$BED_LAST_PID
ctl() { nsenter --net="/run/netns/$(bed_ns b)" --mount="/proc/$ML_PID_b/ns/mnt" "$MLINKCTL" -n "$id" "$@"; }
for ((i = 0; i < 50; i++)); do
  kill -0 "$ML_PID_b" 2>/dev/null || { cat "$BED_TMP/mlinkd-b.log" >&2; bed_die "mlinkd without BFD exited"; }
  ctl show >/dev/null 2>&1 && break
  sleep 0.1
done
ctl show || { cat "$BED_TMP/mlinkd-b.log" >&2; bed_die "mlinkctl show: no control socket without BFD"; }
[ "$(nsenter --mount="/proc/$ML_PID_b/ns/mnt" stat -c %a /run/mlink)" = 700 ] || bed_die "/run/mlink is not 0700"
ml_stop b
[ "$(sysctls)" = "$want" ] || bed_die "sysctls not restored after a stop without BFD"
echo "PASS: restart and cleanup"
