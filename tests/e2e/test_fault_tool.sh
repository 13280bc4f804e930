#!/usr/bin/env bash
# The fault injector the failover tests rely on: a silent one-way blackhole on
# a link's ingress (carrier stays up), random loss, and removal; it runs before
# mlink's own ingress program, which still sees every packet it lets through.
set -euo pipefail
source "$(dirname "$0")/lib/bed.sh"
source "$(dirname "$0")/lib/mlink.sh"
bed_require_root
bed_init

ml_two_hosts 2
ml_start a "$(ml_config a 1 2 2)"
ml_start b "$(ml_config b 2 1 2)"
ml_wait_links a b

echo "== blackhole on b's eth1 ingress: a -> b over eth1 dies, carrier stays up"
ml_fault b eth1 ingress 1000000
! bed_exec a ping -c 2 -i 0.2 -w 2 10.1.0.2 >/dev/null || bed_die "ping crossed a blackhole"
bed_exec b ip link show eth1 | grep -q LOWER_UP || bed_die "carrier went down"
[ "$(ml_fault_dropped b eth1 ingress)" -ge 2 ] || bed_die "drops not counted"
bed_exec a ping -c 2 -i 0.2 -w 2 10.0.0.2 >/dev/null || bed_die "eth0 affected"

echo "== 30 % loss: some pings pass, some do not"
ml_fault b eth1 ingress 300000
out=$(bed_exec a ping -c 50 -i 0.01 -w 5 10.1.0.2 || true)
loss=$(grep -oE '[0-9.]+% packet loss' <<<"$out" | cut -d% -f1)
awk -v l="$loss" 'BEGIN { exit !(l > 5 && l < 70) }' || bed_die "30 % loss gave $loss %"

echo "== rate 0: the fault passes everything on to mlink's ingress program"
ml_fault b eth1 ingress 0
ml_fault b eth0 ingress 0
bed_exec a ping -c 2 -i 0.2 -w 3 10.1.0.2 >/dev/null || bed_die "link did not recover"
for i in $(seq 1 8); do bed_exec a ping -c 1 -w 2 10.88.0.2 >/dev/null || bed_die "ML ping failed"; done
echo "PASS: fault tool"
