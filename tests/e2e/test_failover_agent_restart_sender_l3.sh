#!/usr/bin/env bash
# test_failover_agent_restart_l3.sh with the sender's agent (a) killed and restarted instead
# of the receiver's (issue 13, acceptance 1: either agent): no link of the mixed veth + L3 set
# goes out on b, and a's restarted agent adopts its datapath with every link up.
ML_L3_LINKS=1 FO_RESTART_HOST=a exec bash "$(dirname "$0")/test_failover_agent_restart.sh"
