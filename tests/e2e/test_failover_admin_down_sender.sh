#!/usr/bin/env bash
# Link admin-down on the sending side under load (issue 4, acceptance 2): iperf3 -P8 a -> b
# over 3 × 200 Mbit/s links; at t=3 s `ip link set eth1 down` on a (veth: b's eth1 loses
# carrier too), up again at t=7 s. Both maps must drop eth1, no stream may stay under
# 1 Mbit/s for more than 1 s, and eth1 must carry traffic again after it comes back.
source "$(dirname "$0")/lib/failover.sh"
fo_setup
fo_iperf_start 15
fo_at 3
bed_exec a ip link set eth1 down
fo_mark fault "ip link set eth1 down on a (the sender)"
fo_at 7
bed_exec a ip link set eth1 up
fo_mark repair "ip link set eth1 up on a"
fo_check_carries eth1 5
fo_finish eth1 "admin-down on the sender"
