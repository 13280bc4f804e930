#!/usr/bin/env bash
# test_failover_oneway.sh with eth1, the link that fails, an L3 point-to-point link (a tun
# device in each host joined by ml-tunrelay: no MAC, NOARP) beside two veths (issue 13): the
# silent one-way failure is taken out of both maps and repaired as on a veth.
ML_L3_LINKS=1 exec bash "$(dirname "$0")/test_failover_oneway.sh"
