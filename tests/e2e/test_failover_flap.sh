#!/usr/bin/env bash
# A flapping link under load (issue 4, acceptance 2): iperf3 -P8 a -> b over 3 × 200 Mbit/s
# links; from t=3 s eth1 on a is toggled down / up every 0.5 s for 5 s, then left up. Both
# maps must take eth1 out (the poller records every down and for how long), no stream may
# stay under 1 Mbit/s for more than 1 s, and eth1 must carry traffic again once it stays up.
source "$(dirname "$0")/lib/failover.sh"
fo_setup
fo_iperf_start 16
fo_at 3
fo_mark fault "eth1 on a flapping: down / up every 0.5 s"
fo_flap a eth1
fo_mark repair "eth1 on a left up"
fo_check_carries eth1 5
fo_finish eth1 "flapping link"
