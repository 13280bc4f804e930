#!/usr/bin/env bash
# A one-way silent failure under load (issue 4): 3 × 200 Mbit/s links, iperf3 -P8 from a to
# b; at t=3 s everything a sends to b over eth1 is dropped on b's ingress, carrier up (kernel
# ECMP never repairs this). BFD must take eth1 out of BOTH ends' maps, no stream may stall for
# more than 1 s, and once repaired eth1 must carry traffic again. The time to repair is
# measured in bench/, not asserted here. Scenario: lib/failover.sh.
source "$(dirname "$0")/lib/failover.sh"
fo_setup
fo_iperf_start 15
fo_at 3
ml_fault b eth1 ingress 1000000
fo_mark fault "silent blackhole a -> b on eth1 (b's ingress, carrier up)"
fo_wait_state b eth1 down 2 || fo_fail "b: eth1 not down within 2 s"
fo_wait_state a eth1 down 2 || fo_fail "a: eth1 not down within 2 s"
fo_at 7
ml_fault b eth1 ingress 0
fo_mark repair
fo_check_carries eth1 5
fo_finish eth1 "one-way silent failure"
