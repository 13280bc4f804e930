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
// The three maps `show maps` / `show drops` read, each checked (map info, not
// constants) to have the key and value sizes this mlinkctl's ABI reads: a
// datapath of another ABI version is refused by name, never misread. Their
// sizes (max_entries) are whatever the agent loaded (node.max_peers).
Pins open_pins(const std::string& dir);
nlohmann::json peers_json(const Pins& p);  // every ml_peers entry with its slots' counters
nlohmann::json drops_json(const Pins& p);  // ml_drops by reason label

}  // namespace mlinkctl
