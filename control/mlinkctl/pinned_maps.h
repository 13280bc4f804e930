// pinned_maps.h - what `mlinkctl show maps` and `show drops` read straight
// from the datapath's pinned maps (<bpffs>/mlink/<node>/): they work while no
// agent runs, e.g. during a restart.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mlinkctl {

struct Pins {
  int peers = -1, peer_stats = -1, drops = -1;
};

// A pinned map's fd; throws std::runtime_error naming the path.
int open_pin(const std::string& dir, const char* name);
nlohmann::json peers_json(const Pins& p);  // every ml_peers entry with its slots' counters
nlohmann::json drops_json(const Pins& p);  // ml_drops by reason label

}  // namespace mlinkctl
