#!/usr/bin/env bash
# rx_mode = "loose" (the documented mode without the ingress program): no
# program on the links, their rp_filter set to loose by mlinkd and restored on
# exit; ML traffic is still delivered (weak host model) in both families.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 3
for h in a b; do
  bed_sysctl "$h" net.ipv4.conf.all.rp_filter=1
  for i in 0 1 2; do bed_sysctl "$h" "net.ipv4.conf.eth$i.rp_filter=1"; done
done

ml_start a "$(ml_config a 1 2 3 'rx_mode = "loose"')"
ml_start b "$(ml_config b 2 1 3 'rx_mode = "loose"')"
ml_wait_links a b

for i in 0 1 2; do
  [ "$(bed_exec b cat "/proc/sys/net/ipv4/conf/eth$i/rp_filter")" = 2 ] || bed_die "eth$i rp_filter not loose"
  [ -z "$(bed_exec b tc filter show dev "eth$i" ingress)" ] || bed_die "ingress program attached in loose mode"
done
bed_exec a ping -c 3 -i 0.2 -w 5 10.88.0.2 >/dev/null || bed_die "ping 10.88.0.2"
bed_exec a ping -6 -c 3 -i 0.2 -w 5 fd88::2 >/dev/null || bed_die "ping fd88::2"
bed_iperf_server b 5201
bed_iperf a 10.88.0.2 8 2 "$BED_TMP/iperf.json" -p 5201 || bed_die "iperf3 over ML"
echo "  aggregate $(bed_iperf_mbps "$BED_TMP/iperf.json") Mbit/s"
while read -r link pkts _; do
  [ "$pkts" -gt 0 ] || bed_die "$link carried no ML traffic"
done < <(ml_slot_packets a)

ml_stop a
ml_stop b
for i in 0 1 2; do
  [ "$(bed_exec b cat "/proc/sys/net/ipv4/conf/eth$i/rp_filter")" = 1 ] || bed_die "eth$i rp_filter not restored"
done
echo "PASS: rx_mode loose"
