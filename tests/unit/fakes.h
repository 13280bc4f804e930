// fakes.h - the agent's three interfaces to the system, in memory: the
// datapath (every write recorded), the neighbour table, BFD sessions. Agent
// unit tests drive LinkSetController with them and check each write.
#pragma once

#include <linux/neighbour.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/neighbours.h"
#include "agent/sessions.h"
#include "datapath/datapath.h"

namespace mlink::testing {

class FakeDatapath final : public datapath::Datapath {
 public:
  struct Write {
    IpAddr addr;
    std::optional<ml_peer> value;  // nullopt: deleted
  };
  std::vector<Write> writes;
  std::map<IpAddr, ml_peer> peers;
  std::map<uint32_t, ml_peer_stats> stats;

  Status set_peer(const IpAddr& addr, const ml_peer& value) override {
    writes.push_back({addr, value});
    peers[addr] = value;
    return {};
  }
  Status del_peer(const IpAddr& addr) override {
    writes.push_back({addr, std::nullopt});
    peers.erase(addr);
    return {};
  }
  Status add_local(const IpAddr&) override { return {}; }
  std::set<ml_bfd_key, datapath::BfdKeyLess> bfd_peers;
  std::map<ml_bfd_key, uint32_t, datapath::BfdKeyLess> bfd_slots;  // the value written
  Status set_bfd_peer(const ml_bfd_key& k, bool present, uint32_t slot = 0) override {
    if (present) {
      bfd_peers.insert(k);
      bfd_slots[k] = slot;
    } else {
      bfd_peers.erase(k);
      bfd_slots.erase(k);
    }
    return {};
  }
  std::map<std::pair<int, int>, IpAddr> link_addrs;  // (ifindex, family)
  Status set_link_addr(int ifindex, const IpAddr& local, bool present) override {
    if (present)
      link_addrs[{ifindex, local.family}] = local;
    else
      link_addrs.erase({ifindex, local.family});
    return {};
  }
  int stats_reads = 0;
  std::set<uint32_t> stats_read_ids;
  Result<ml_peer_stats> peer_stats(uint32_t peer_id) override {
    stats_reads++;
    stats_read_ids.insert(peer_id);
    auto it = stats.find(peer_id);
    return it == stats.end() ? ml_peer_stats{} : it->second;
  }
  Result<std::array<ml_counter, ML_DROP_MAX>> drops() override {
    return std::array<ml_counter, ML_DROP_MAX>{};
  }
  std::vector<Write> take() { return std::exchange(writes, {}); }
};

// Entries resolve at once (REACHABLE) unless listed in `failing`.
class FakeNeighbours final : public agent::NeighbourOps {
 public:
  std::map<agent::NeighKey, uint16_t> table;
  std::set<agent::NeighKey> failing;
  std::vector<std::string> log;  // "add 10.0.0.2@10", "del ..."

  Status add_managed(const agent::NeighKey& n) override {
    log.push_back("add " + n.addr.str() + "@" + std::to_string(n.ifindex));
    table[n] = failing.count(n) ? NUD_FAILED : NUD_REACHABLE;
    return {};
  }
  Status remove(const agent::NeighKey& n) override {
    log.push_back("del " + n.addr.str() + "@" + std::to_string(n.ifindex));
    table.erase(n);
    return {};
  }
  std::optional<uint16_t> state(const agent::NeighKey& n) override {
    auto it = table.find(n);
    if (it == table.end()) return std::nullopt;
    return it->second;
  }
  Result<std::map<agent::NeighKey, uint16_t>> states() override {
    dumps++;
    return table;
  }
  int dumps = 0;
};

// Sessions come up when the test says so.
class FakeSessions final : public agent::SessionDriver {
 public:
  std::map<Id, agent::SessionTarget> live;
  std::map<Id, agent::SessionInfo> infos;
  std::vector<std::string> removed;  // session names
  Id next = 1;

  Result<Id> add(const agent::SessionTarget& t) override {
    live[next] = t;
    infos[next] = {};
    return next++;
  }
  void remove(Id id) override {
    removed.push_back(live.at(id).name);
    live.erase(id);
    infos.erase(id);
  }
  agent::SessionInfo info(Id id) const override { return infos.at(id); }
  // The id of the session over `remote` (each test uses distinct next hops).
  Id id_of(const std::string& remote) const {
    for (const auto& [id, t] : live)
      if (t.remote.str() == remote) return id;
    return 0;
  }
  void set_up(Id id, bool up) {
    infos.at(id).up = up;
    infos.at(id).state = up ? bfd::State::Up : bfd::State::Down;
  }
};

}  // namespace mlink::testing
