#!/usr/bin/env bash
# test_failover_oneway.sh in flowlet mode (issue 15, acceptance 2): the one-way silent failure
# is taken out of both ends' maps and no stream stalls, with flows moving between links at
# every pause.
ML_NODE_TOML='spread = "flowlet"' exec bash "$(dirname "$0")/test_failover_oneway.sh"
