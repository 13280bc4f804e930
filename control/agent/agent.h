// agent.h - mlinkd: applies a validated config to the system (ML device,
// sysctls, datapath, sockets), runs the event loop, and removes everything
// it made when it stops.
//
// What the agent decides about peers lives in LinkSetController
// (controller.h) and its parts; this class owns the system resources, wires
// events from netlink, BFD, discovery and the control socket to it, and
// answers operators (api.cpp, metrics.cpp).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/bfd_peers.h"
#include "agent/controller.h"
#include "agent/liveness.h"
#include "agent/neighbours.h"
#include "agent/topology.h"
#include "common/result.h"
#include "config/config.h"
#include "ctl/server.h"
#include "datapath/bpf_datapath.h"
#include "discovery/discovery.h"
#include "metrics/exporter.h"
#include "netlink/events.h"
#include "netlink/rtnl.h"
#include "netlink/tun.h"
#include "system/sysctl.h"
#include "system/sysctl_store.h"

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

  // mlinkd --cleanup (cleanup.cpp): removes what an agent of this node id
  // that died left behind; refused while one runs. Nothing left: no-op.
  static Status cleanup(config::Config cfg);

 private:
  Agent(config::Config cfg, nl::Rtnl rtnl);
  // /run/mlink/<node id><suffix>: state that outlives the agent.
  std::string run_path(const std::string& suffix) const;
  std::string pin_dir() const;  // <bpffs>/mlink/<node id>
  Status refuse_if_running() const;
  Status open_sysctl_store();
  Status take_over_remains();  // for cleanup(): what the destructor then removes
  size_t remove_left_neighbours();
  const Links& links() const { return controller_ ? controller_->links() : links_; }
  Status read_links();
  // A link as the kernel has it now (ifindex, flags, addresses); policy from the caller.
  Result<LocalLink> read_link(const std::string& device);
  // Makes `want` the running links: a new one is set up first (sysctls,
  // ingress program, discovery), so a failure changes nothing; then every
  // peer is replanned and what left is taken down (BFD says AdminDown first).
  Status apply_links(Links want, const char* why);
  discovery::ProtocolLink discovery_link(const LocalLink& l) const;
  Status set_link_sysctls(size_t id, const LocalLink& l);
  void fit_ml_mtu();
  Status apply_sysctls();
  Status create_ml_device();
  Status load_datapath();
  Status start_liveness();
  Status start_discovery();
  void sync_peers(const char* why);
  void resync();
  void discard_tun_packets();
  // Device lifecycle (device_lifecycle.cpp): a link's device deleted or renamed leaves
  // service and comes back when a device of its name (with an address) appears; the ML
  // device deleted ends the agent (exit 1) after a clean stop.
  void on_link_events(const std::vector<nl::LinkEvent>& events);
  void recover_links();
  void ml_device_lost(const std::string& why);
  std::string config_error(int line, const std::string& key, const std::string& msg) const;

  // The control socket (api.cpp): requests, and events to `mlinkctl monitor`.
  Status start_control();
  nlohmann::json handle_request(const ctl::Request& req);
  nlohmann::json show_node() const;
  nlohmann::json show_peers();
  nlohmann::json show_links() const;
  nlohmann::json show_drops() const;
  nlohmann::json flow_get(const ctl::Request& req);
  nlohmann::json link_set(const ctl::Request& req);
  nlohmann::json link_add(const ctl::Request& req);
  nlohmann::json link_del(const ctl::Request& req);
  // Re-reads the config file and applies the difference ([[link]], [[peer]],
  // node.hash); on any error nothing changes and the error says file:line:key.
  nlohmann::json reload(const char* who);
  nlohmann::json unshared_links(const PeerPlan& plan) const;
  void publish(nlohmann::json event);
  // Prometheus (metrics.cpp): families rebuilt on the loop when a scrape asks.
  Status start_metrics();
  void refresh_metrics();
  // Protocol drops by reason label, both protocols (for logs and /metrics).
  std::vector<std::pair<std::string, uint64_t>> protocol_drops(const char* protocol) const;
  void log_protocol_drops() const;

  static int on_signal(::sd_event_source*, const ::signalfd_siginfo*, void*);
  static int on_netlink(::sd_event_source*, int, uint32_t, void*);
  static int on_tun(::sd_event_source*, int, uint32_t, void*);
  static int on_resync_timer(::sd_event_source*, uint64_t, void*);
  static int on_metrics_request(::sd_event_source*, int, uint32_t, void*);
  static int on_adopt_timer(::sd_event_source*, uint64_t, void*);
  static int on_rebalance_timer(::sd_event_source*, uint64_t, void*);
  Status add_timer(uint64_t period_usec, int (*handler)(::sd_event_source*, uint64_t, void*));

  config::Config cfg_;
  nl::Rtnl rtnl_;
  Links links_;  // until the controller exists (apply), which then owns them
  size_t next_link_id_ = 0;
  std::vector<PeerPlan> static_plans_;  // from [[peer]], until the controller exists
  std::map<IpAddr, ml_peer> adopted_;   // likewise: entries of an agent that died

  // Owned system state, destroyed in reverse order of declaration (the
  // destructor ends the controller first: its neighbour entries go first).
  std::unique_ptr<mlink::SysctlStore> sysctl_store_;  // the originals, in a file
  std::vector<mlink::SysctlGuard> sysctls_;
  std::map<size_t, std::vector<mlink::SysctlGuard>> link_sysctls_;  // by link id
  std::optional<nl::TunDevice> ml_dev_;
  std::unique_ptr<datapath::BpfDatapath> dp_;
  std::optional<nl::EventSocket> events_;
  std::unique_ptr<Liveness> liveness_;
  std::unique_ptr<BfdPeerFilter> bfd_peers_;  // liveness_ as the controller sees it
  RtnlNeighbours neighbour_ops_{rtnl_};
  std::unique_ptr<LinkSetController> controller_;
  std::unique_ptr<discovery::Discovery> discovery_;
  // Links whose device went (deleted, renamed) by the name that brings them back, with
  // their policy; a new device of that name takes their place (recover_links).
  struct AbsentLink {
    LocalLink policy;           // weight, backup, drain as they were
    bool said_waiting = false;  // logged once that its device is back but not usable yet
  };
  std::map<std::string, AbsentLink> absent_links_;
  std::optional<Error> fatal_;  // why the loop was ended from inside (run() returns it)
  sd_event_source* tun_source_ = nullptr;
  uint64_t tun_discarded_ = 0;
  uint64_t carrier_loss_us_ = 0;  // the last carrier loss: handling it took this long
  // Restart: the ML device and pins of an agent that died are taken over.
  // Its peer entries stay as they are until relearned, or until the grace
  // period (longer than discovery's hold time) ends.
  static constexpr uint64_t kAdoptGraceUsec = 10'000'000;
  bool adopting_ = false;
  sd_event* loop_ = nullptr;
  std::string control_path_;
  std::unique_ptr<ctl::Server> ctl_;  // after loop_: it holds sources of the loop
  uint64_t started_us_ = 0;
  std::unique_ptr<metrics::Exporter> exporter_;
};

}  // namespace mlink::agent
