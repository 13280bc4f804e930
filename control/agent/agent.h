// agent.h - mlinkd: applies a validated config to the system, learns peers
// (static [[peer]]s and discovery), keeps every peer's link set in the
// datapath in step with discovery, BFD, link and neighbour state, and
// removes everything it made when it stops.
//
// Peers, next-hop neighbours and BFD sessions are reconciled as desired
// state: sync_peers() computes what should exist from the config and the
// discovery table and adds or removes the difference.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "agent/liveness.h"
#include "agent/topology.h"
#include "common/result.h"
#include "config/config.h"
#include "ctl/server.h"
#include "datapath/bpf_datapath.h"
#include "discovery/discovery.h"
#include "linkset/damping.h"
#include "linkset/link_counters.h"
#include "linkset/rebalance.h"
#include "metrics/exporter.h"
#include "netlink/events.h"
#include "netlink/rtnl.h"
#include "netlink/tun.h"
#include "system/sysctl.h"

struct sd_event;
struct sd_event_source;
struct signalfd_siginfo;

namespace mlink::agent {

class Agent {
 public:
  // Reads the kernel's view of the links and plans the peers; applies nothing.
  // A config that does not fit the system fails here with file:line:key.
  static Result<std::unique_ptr<Agent>> prepare(config::Config cfg);
  ~Agent();  // undoes, in reverse order, everything apply() did

  Status apply();  // create ml0, sysctls, load/attach/pin, neighbours, peers
  Status run();    // event loop until SIGTERM/SIGINT

 private:
  struct NeighKey {
    int ifindex;
    IpAddr addr;
    auto operator<=>(const NeighKey&) const = default;
  };

  Agent(config::Config cfg, nl::Rtnl rtnl);
  Status read_links();
  // A link as the kernel has it now (ifindex, flags, addresses); policy from the caller.
  Result<LocalLink> read_link(const std::string& device);
  // Makes `want` the running links: a new one is set up first (sysctls,
  // ingress program, discovery), so a failure changes nothing; then every
  // peer is replanned and what left is taken down (BFD says AdminDown first).
  Status apply_links(Links want, const char* why);
  discovery::LocalLink discovery_link(const LocalLink& l) const;
  Status set_link_sysctls(size_t id, const LocalLink& l);
  void fit_ml_mtu();
  Status apply_sysctls();
  Status create_ml_device();
  Status load_datapath();
  struct TargetKey {  // one BFD session: a peer over one link
    std::string peer;
    size_t link;
    IpAddr remote;
    auto operator<=>(const TargetKey&) const = default;
  };

  Status start_liveness();
  Status start_discovery();
  void sync_peers(const char* why);
  std::map<std::string, PeerPlan> wanted_peers() const;
  void drop_peer(const PeerPlan& plan);
  void sync_neighbours();
  void sync_targets();
  void on_liveness(Liveness::Id target, const bfd::Transition& t);
  void on_loss(Liveness::Id target, bool lossy, unsigned lost);
  std::string note_health(const TargetKey& key, bool failed);
  bool proven(const PeerPlan& plan, size_t slot) const;
  void refresh_all_peers(const char* why);
  void refresh_peer(const PeerPlan& plan, const char* why);
  ml_peer build_entry(const PeerPlan& plan, const IpAddr& ml_addr);
  std::vector<linkset::Member> members(const PeerPlan& plan, const IpAddr& ml_addr) const;
  void rebalance_all();
  void track_slot_owners();
  static linkset::SlotCounters slot_counters(const ml_peer_stats& st);
  bool link_up(size_t link) const;
  bool neigh_ok(int ifindex, const IpAddr& nh) const;
  void on_event(const nl::Event& ev);
  void resync();
  void renew_neighbours(int ifindex, bool unresolved_v6);
  void drain_tun();
  void log_protocol_counters() const;
  // The control socket (api.cpp): requests, and events to `mlinkctl monitor`.
  Status start_control();
  nlohmann::json handle_request(const nlohmann::json& req);
  nlohmann::json show_node() const;
  nlohmann::json show_peers();
  nlohmann::json show_links() const;
  nlohmann::json show_drops() const;
  nlohmann::json flow_get(const nlohmann::json& req);
  nlohmann::json link_set(const nlohmann::json& req);
  nlohmann::json link_add(const nlohmann::json& req);
  nlohmann::json link_del(const nlohmann::json& req);
  // Re-reads the config file and applies the difference ([[link]], [[peer]],
  // node.hash); on any error nothing changes and the error says file:line:key.
  nlohmann::json reload(const char* who);
  nlohmann::json unshared_links(const PeerPlan& plan) const;
  void publish(nlohmann::json event);
  // Prometheus (metrics.cpp): families rebuilt every second on the loop.
  Status start_metrics();
  void refresh_metrics();
  std::string config_error(int line, const std::string& key, const std::string& msg) const;

  static int on_signal(::sd_event_source*, const ::signalfd_siginfo*, void*);
  static int on_netlink(::sd_event_source*, int, uint32_t, void*);
  static int on_tun(::sd_event_source*, int, uint32_t, void*);
  static int on_resync_timer(::sd_event_source*, uint64_t, void*);
  static int on_adopt_timer(::sd_event_source*, uint64_t, void*);
  static int on_rebalance_timer(::sd_event_source*, uint64_t, void*);
  Status add_timer(uint64_t period_usec, int (*handler)(::sd_event_source*, uint64_t, void*));

  config::Config cfg_;
  nl::Rtnl rtnl_;
  Links links_;
  size_t next_link_id_ = 0;
  std::set<int> carrier_lost_;             // ifindexes, between a netlink event and its handling
  std::set<int> link_local_ready_;         // likewise: an IPv6 link-local address left DAD
  std::vector<PeerPlan> static_plans_;     // from [[peer]], peer_id unset
  std::map<std::string, PeerPlan> peers_;  // by PeerPlan::key, with their peer_id
  std::vector<uint32_t> free_ids_;         // peer ids released by departed peers
  uint32_t next_id_ = 0;

  // Owned system state, destroyed in reverse order of declaration.
  std::vector<mlink::SysctlGuard> sysctls_;
  std::map<size_t, std::vector<mlink::SysctlGuard>> link_sysctls_;  // by link id
  std::optional<nl::TunDevice> ml_dev_;
  std::unique_ptr<datapath::BpfDatapath> dp_;
  std::optional<nl::EventSocket> events_;
  std::unique_ptr<Liveness> liveness_;
  std::unique_ptr<discovery::Discovery> discovery_;
  std::map<TargetKey, Liveness::Id> targets_;
  std::map<Liveness::Id, TargetKey> target_key_;
  mutable std::map<TargetKey, linkset::Damping> damping_;  // hold-down of repaired links

  std::map<NeighKey, uint16_t> nud_;   // managed entries we added (deleted on exit), NUD state
  std::map<IpAddr, ml_peer> written_;  // last value written per ML address
  std::map<IpAddr, linkset::Overrides> overrides_;  // load-aware moves per ML address
  std::map<uint32_t, std::array<uint64_t, ML_BUCKETS>> bucket_seen_;  // per peer_id
  linkset::LinkCounters link_counters_;  // per-link totals across slot renumbering
  uint64_t tun_discarded_ = 0;
  // Restart: the ML device and pins of an agent that died are taken over.
  // Its peer entries stay as they are until relearned, or until the grace
  // period (longer than discovery's hold time) ends.
  static constexpr uint64_t kAdoptGraceUsec = 10'000'000;
  bool adopting_ = false;
  std::map<IpAddr, ml_peer> adopted_;
  sd_event* loop_ = nullptr;
  std::string control_path_;
  std::unique_ptr<ctl::Server> ctl_;  // after loop_: it holds sources of the loop
  uint64_t started_us_ = 0;
  std::unique_ptr<metrics::Exporter> exporter_;
  std::map<TargetKey, uint64_t> state_changes_;  // BFD transitions per session, for /metrics
};

}  // namespace mlink::agent
