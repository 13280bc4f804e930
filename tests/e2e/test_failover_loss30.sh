#!/usr/bin/env bash
# 30 % random loss on one link under load (issue 4, acceptance 2): iperf3 -P8 a -> b over
# 3 × 200 Mbit/s links; from t=3 s to t=8 s b's eth1 ingress drops 30 % of what a sends over
# it, carrier up. Both maps must take eth1 out (it may come and go: the poller records every
# down and for how long), no stream may stay under 1 Mbit/s for more than 1 s, and eth1 must
# carry traffic again after the repair.
source "$(dirname "$0")/lib/failover.sh"
fo_setup
fo_iperf_start 15
fo_at 3
ml_fault b eth1 ingress 300000
fo_mark fault "30 % random loss a -> b on eth1 (b's ingress, carrier up)"
fo_at 8
ml_fault b eth1 ingress 0
fo_mark repair "loss removed ($(ml_fault_dropped b eth1 ingress) packets dropped)"
fo_check_carries eth1 5
fo_finish eth1 "30 % loss on one link"
