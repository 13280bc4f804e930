// agent.h - mlinkd's static mode: applies a validated config to the system,
// keeps every peer's link set in the datapath in step with link and
// neighbour state, and removes everything it made when it stops.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/liveness.h"
#include "agent/topology.h"
#include "common/result.h"
#include "config/config.h"
#include "datapath/bpf_datapath.h"
#include "linkset/rebalance.h"
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
  Status apply_sysctls();
  Status create_ml_device();
  Status load_datapath();
  Status add_neighbours();
  Status start_liveness();
  void on_liveness(size_t target, const bfd::Transition& t);
  bool proven(uint32_t peer_id, size_t slot) const;
  void refresh_all_peers(const char* why);
  void refresh_peer(const PeerPlan& plan, const char* why);
  ml_peer build_entry(const PeerPlan& plan, const IpAddr& ml_addr);
  std::vector<linkset::Member> members(const PeerPlan& plan, const IpAddr& ml_addr) const;
  void rebalance_all();
  bool link_up(size_t link) const;
  bool neigh_ok(int ifindex, const IpAddr& nh) const;
  void on_event(const nl::Event& ev);
  void resync();
  void drain_tun();
  std::string config_error(int line, const std::string& key, const std::string& msg) const;

  static int on_signal(::sd_event_source*, const ::signalfd_siginfo*, void*);
  static int on_netlink(::sd_event_source*, int, uint32_t, void*);
  static int on_tun(::sd_event_source*, int, uint32_t, void*);
  static int on_resync_timer(::sd_event_source*, uint64_t, void*);
  static int on_rebalance_timer(::sd_event_source*, uint64_t, void*);
  Status add_timer(uint64_t period_usec, int (*handler)(::sd_event_source*, uint64_t, void*));

  config::Config cfg_;
  nl::Rtnl rtnl_;
  std::vector<LocalLink> links_;
  std::vector<unsigned> link_flags_;
  std::vector<PeerPlan> peers_;

  // Owned system state, destroyed in reverse order of declaration.
  std::vector<mlink::SysctlGuard> sysctls_;
  std::optional<nl::TunDevice> ml_dev_;
  std::unique_ptr<datapath::BpfDatapath> dp_;
  std::vector<NeighKey> neighbours_;  // managed entries we added; deleted on exit
  std::optional<nl::EventSocket> events_;
  std::unique_ptr<Liveness> liveness_;
  std::map<std::pair<uint32_t, size_t>, size_t> target_of_;  // (peer_id, slot) -> BFD target
  std::vector<std::pair<uint32_t, size_t>> target_slot_;     // BFD target -> (peer_id, slot)

  std::map<NeighKey, uint16_t> nud_;                // NUD state of every next hop
  std::map<IpAddr, ml_peer> written_;               // last value written per ML address
  std::map<IpAddr, linkset::Overrides> overrides_;  // load-aware moves per ML address
  std::map<uint32_t, std::array<uint64_t, ML_BUCKETS>> bucket_seen_;  // per peer_id
  uint64_t tun_discarded_ = 0;
  sd_event* loop_ = nullptr;
};

}  // namespace mlink::agent
