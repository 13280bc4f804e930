#!/usr/bin/env bash
# test_failover_agent_restart.sh with eth1's ingress on both hosts handing mlink IPoIB's
# 24-byte L2 header (issue 13; ml-l2shape, as no InfiniBand device is here): a SIGKILLed and
# restarted agent takes no link out, so echoes arriving with that header are reflected by the
# datapath. Before the datapath handled other L2 lengths, they went unanswered and eth1 went
# down on a once b's agent was gone.
ML_IPOIB_LINKS=1 exec bash "$(dirname "$0")/test_failover_agent_restart.sh"
