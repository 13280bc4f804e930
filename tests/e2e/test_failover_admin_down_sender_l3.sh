#!/usr/bin/env bash
# test_failover_admin_down_sender.sh with eth1 an L3 point-to-point link (issue 13): the link
# taken down on the sender is out of both maps at once (carrier, then BFD) and back after.
ML_L3_LINKS=1 exec bash "$(dirname "$0")/test_failover_admin_down_sender.sh"
