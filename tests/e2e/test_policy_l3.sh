#!/usr/bin/env bash
# test_policy.sh with eth1 an L3 point-to-point link (issue 13): weights, drain on one end
# (carried to the other by LINKS), undrain and backup work the same over a mixed veth + L3
# set found by discovery.
ML_L3_LINKS=1 exec bash "$(dirname "$0")/test_policy.sh"
