// controller.h - keeps every peer's link set in the datapath in step with
// discovery, BFD, link and neighbour state.
//
// The agent's decisions, with no socket, loop or device of its own: it is fed
// events (netlink, BFD transitions and loss, discovery, run-time link
// changes) and acts through three interfaces: the Datapath (entries), the
// neighbour table (managed entries), a SessionDriver (BFD). Unit tests drive
// it with fakes of all three and check every map write.
//
// An event rewrites only the peers it touches: a link's carrier or a
// neighbour entry, the peers that use that link; a session, its peer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/neighbours.h"
#include "agent/peer_entries.h"
#include "agent/peer_registry.h"
#include "agent/sessions.h"
#include "agent/topology.h"
#include "datapath/datapath.h"
#include "discovery/neighbors.h"
#include "linkset/link_counters.h"
#include "netlink/events.h"

namespace mlink::agent {

struct ControllerDeps {
  datapath::Datapath& dp;
  NeighbourOps& neighbours;
  SessionDriver* sessions = nullptr;                                    // null: BFD disabled
  std::function<void(nlohmann::json)> publish = [](nlohmann::json) {};  // to `mlinkctl monitor`
  SessionTable::Clock now;  // monotonic microseconds; default monotonic_us
  uint32_t max_peers = ML_MAX_PEERS;
};

// What show peers and /metrics report of one (peer, link).
struct PeerLinkStatus {
  const PeerLink* plan = nullptr;
  std::string device;
  bool carrier = false;
  bool up = false;       // the first ML address's entry uses it
  unsigned buckets = 0;  // of the first ML address's entry
  ml_counter counted{};  // what the datapath sent over this link, across slot renumbering
  std::optional<SessionInfo> session;
  uint64_t hold_down_ms = 0;
  uint64_t state_changes = 0;
};

// One entry (ML address) of a peer: per slot, its state and share.
struct EntryStatus {
  IpAddr ml_address;
  struct Slot {
    std::string device;
    std::optional<IpAddr> next_hop;
    bool up = false;
    unsigned buckets = 0;
  };
  std::vector<Slot> slots;
};

struct PeerStatus {
  const PeerPlan* plan = nullptr;
  std::vector<PeerLinkStatus> links;
  std::vector<EntryStatus> entries;
};

class LinkSetController {
 public:
  LinkSetController(ControllerDeps deps, std::vector<Prefix> own_ml, Spreading spreading);

  // Inputs that change the plans; each caller then calls sync().
  void set_links(Links links) { links_ = std::move(links); }
  void set_static_plans(std::vector<PeerPlan> plans) { statics_ = std::move(plans); }
  void set_spreading(const Spreading& s) { spreading_ = s; }
  // The plans of the nodes discovery heard, over the current links.
  std::vector<PeerPlan> plan_nodes(const std::map<std::string, discovery::Node>& nodes) const;

  // Reconciles the peers with statics and `discovered`: ids, entries,
  // neighbours, sessions; then rewrites every peer.
  void sync(const std::vector<PeerPlan>& discovered, const char* why);
  // Discovery heard something new of these nodes: only their plans are made
  // again, and only the peers that changed are rewritten.
  void on_nodes(const std::map<std::string, discovery::Node>& nodes,
                const std::vector<std::string>& changed, const char* why);

  // Netlink: state is taken at once, entries are written by after_netlink().
  void on_netlink(const nl::Event& ev);
  // Rewrites the entries of every peer on a link that changed; returns the links that lost
  // carrier in this batch. Only the map writes run here: what they are told as (log,
  // monitor) and the neighbour entries renewed wait for after_rewrite(), so a carrier loss
  // is repaired in the datapath before anything slower runs.
  std::vector<size_t> after_netlink(const char* why);
  void after_rewrite(const char* why);
  // Entries written to the datapath so far (for timing what an event cost).
  uint64_t entry_writes() const { return entry_writes_; }
  // Link flags, ready link-local addresses and neighbour states as read again (events may
  // have been lost: ENOBUFS). What a lost event would have done is done now: a link found
  // down that was up, or a link-local address found out of DAD that was not, gets its
  // neighbour entries renewed as after_netlink() does. link_local_ready: the ifindexes with
  // an IPv6 link-local address past DAD.
  void resync(const std::map<size_t, unsigned>& link_flags, const std::set<int>& link_local_ready);
  void on_transition(SessionDriver::Id id, const bfd::Transition& t);
  void on_loss(SessionDriver::Id id, bool lossy, unsigned lost);
  // Every 100 ms: the peers that carried packets at the last look, and a
  // share of the others (each at least once a second), have their active
  // buckets rebalanced; peers waiting out a hold-down are rewritten.
  void rebalance();
  void refresh_all(const char* why);

  // Restart: entries an agent that died left behind (PeerEntries).
  void adopt(std::map<IpAddr, ml_peer> inherited) { entries_.adopt(std::move(inherited)); }
  void end_adoption();

  const Links& links() const { return links_; }
  const PeerRegistry& registry() const { return registry_; }
  const PeerEntries& entries() const { return entries_; }
  const ManagedNeighbours& neighbours() const { return neighbours_; }
  bool link_up(size_t link) const;
  std::vector<PeerStatus> status();

 private:
  void reconcile(const char* why, bool rewrite_all);
  bool slot_usable(const PeerPlan& plan, size_t slot, const IpAddr& next_hop);
  void refresh(const PeerPlan& plan, const char* why);
  void set_flags(size_t link, unsigned flags);
  bool resolves_neighbours(size_t link) const;
  void renew_neighbours(const char* why);
  void report(const PeerPlan& plan, const std::vector<EntryWrite>& writes, const char* why);
  void sync_neighbours();
  void sync_sessions();
  void track_slot_owners();
  struct SessionEvent {  // whose session an event is about, named for logs and monitor
    SessionKey key;
    const PeerPlan* peer;
    std::string addr;
    std::string device;
  };
  std::optional<SessionEvent> session_event(SessionDriver::Id id) const;
  std::optional<size_t> link_of(int ifindex) const;

  ControllerDeps deps_;
  std::vector<Prefix> own_ml_;
  Spreading spreading_;  // of discovered peers
  Links links_;
  std::vector<PeerPlan> statics_;          // from [[peer]], peer_id unset
  std::map<std::string, PeerPlan> heard_;  // discovered nodes' plans, by node id
  // Declared in this order so that entries and sessions go before the
  // neighbour entries they use.
  ManagedNeighbours neighbours_;
  PeerRegistry registry_;
  SessionTable sessions_;
  PeerEntries entries_;
  linkset::LinkCounters link_counters_;  // per-link totals across slot renumbering
  std::set<size_t> touched_;             // links whose state changed since after_netlink()
  std::set<int> carrier_lost_;           // ifindexes, likewise
  std::set<int> link_local_ready_;       // likewise: an IPv6 link-local address left DAD
  std::set<int> link_local_known_;       // ifindexes known to have one past DAD (events, resync)
  uint64_t entry_writes_ = 0;
  struct Deferred {  // a report held back by after_netlink()
    PeerKey peer;
    std::vector<EntryWrite> writes;
  };
  std::optional<std::vector<Deferred>> deferred_;  // set: refresh() holds reports back
  std::set<PeerKey> active_;                       // carried packets at the last rebalance look
  std::set<PeerKey> holding_;                      // a link of theirs may be in a hold-down
  std::optional<PeerKey> rebalance_cursor_;        // where the last pass's idle share stopped
};

}  // namespace mlink::agent
