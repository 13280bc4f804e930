#!/usr/bin/env bash
# test_failover_agent_restart.sh with eth1 an L3 point-to-point link (issue 13): a SIGKILLed
# and restarted agent takes no link out, the L3 link included (its echoes are reflected by
# the datapath with no L2 header).
ML_L3_LINKS=1 exec bash "$(dirname "$0")/test_failover_agent_restart.sh"
