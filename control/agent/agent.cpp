#include "agent/agent.h"

#include <linux/if_addr.h>
#include <net/if.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/clock.h"
#include "common/log.h"

namespace mlink::agent {
namespace {

constexpr uint64_t kResyncUsec = 1000000;    // safety net for missed netlink events
constexpr uint64_t kRebalanceUsec = 100000;  // look at bucket activity this often
constexpr uint64_t kTimerAccuracyUsec = 1000;
// The control socket, and state that outlives an agent: BFD sessions to
// resume, sysctl originals to restore. Root's only (0700).
constexpr const char* kRunDir = "/run/mlink";

Status make_run_dir() {
  std::error_code ec;
  std::filesystem::create_directories(kRunDir, ec);
  if (ec) return Error{std::string("create ") + kRunDir + ": " + ec.message(), ec.value()};
  if (chmod(kRunDir, 0700) != 0) return os_error(std::string("chmod ") + kRunDir, errno);
  return {};
}

uint64_t now_usec(sd_event* loop) {
  uint64_t t = 0;
  sd_event_now(loop, CLOCK_MONOTONIC, &t);
  return t;
}

// sd-event timers fire once: set the next expiry and enable them again.
int rearm(sd_event_source* src, uint64_t period_usec) {
  int r = sd_event_source_set_time(src, now_usec(sd_event_source_get_event(src)) + period_usec);
  if (r >= 0) r = sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
  if (r < 0) log::error("re-arm timer: {}", strerror(-r));
  return r;
}

}  // namespace

std::string Agent::config_error(int line, const std::string& key, const std::string& msg) const {
  return config::ConfigError{cfg_.path, line, 0, key, msg}.str();
}

Agent::Agent(config::Config cfg, nl::Rtnl rtnl)
    : cfg_(std::move(cfg)),
      rtnl_(std::move(rtnl)),
      control_path_(run_path(".sock")),
      started_us_(monotonic_us()) {}

Result<std::unique_ptr<Agent>> Agent::prepare(config::Config cfg) {
  auto rtnl = nl::Rtnl::open();
  if (!rtnl) return rtnl.error();
  std::unique_ptr<Agent> a(new Agent(std::move(cfg), std::move(*rtnl)));
  if (if_nametoindex(a->cfg_.node.ml_device.c_str()) != 0) {
    // A tun with this node's pins was left by an agent that died: adopt it
    // (and the datapath on it, which kept forwarding). Anything else is not ours.
    std::string pins = a->pin_dir() + "/ml_peers";
    if (!nl::TunDevice::is_tun(a->cfg_.node.ml_device) || access(pins.c_str(), F_OK) != 0)
      return Error{a->config_error(a->cfg_.node.line, "node.ml_device",
                                   "device " + a->cfg_.node.ml_device + " already exists")};
    a->adopting_ = true;
  }
  if (auto s = a->read_links(); !s) return s.error();
  auto plans = plan_peers(a->cfg_, a->links_);
  if (auto* e = std::get_if<PlanError>(&plans))
    return Error{a->config_error(e->line, e->key, e->message)};
  a->static_plans_ = std::get<std::vector<PeerPlan>>(std::move(plans));
  return a;
}

std::string Agent::pin_dir() const {
  return cfg_.node.bpffs + "/mlink/" + cfg_.node.id;
}

std::string Agent::run_path(const std::string& suffix) const {
  return std::string(kRunDir) + "/" + cfg_.node.id + suffix;
}

// A second agent of the same node id would take over (and at its exit
// remove) the running one's ml0, pins and sysctl originals.
Status Agent::refuse_if_running() const {
  if (ctl::Server::in_use(control_path_))
    return Error{"an agent of node " + cfg_.node.id + " is running (" + control_path_ +
                 " accepts connections)"};
  return {};
}

Status Agent::open_sysctl_store() {
  auto store = SysctlStore::open(run_path(".sysctl.json"));
  if (!store) return store.error();
  sysctl_store_ = std::move(*store);
  return {};
}

Agent::~Agent() {
  const bool ran = controller_ != nullptr;  // else: a failed apply, or --cleanup
  const bool owned = ran || dp_ || ml_dev_ || sysctl_store_;
  controller_.reset();  // its managed neighbour entries go
  if (ran) log_protocol_drops();
  exporter_.reset();                         // its HTTP threads end here
  ctl_.reset();                              // clients see the socket close; the file goes
  discovery_.reset();                        // event sources belong to loop_, unreffed below
  if (liveness_) liveness_->forget_state();  // a clean stop: nothing to resume
  bfd_peers_.reset();
  liveness_.reset();
  events_.reset();
  dp_.reset();  // detach programs, unpin maps
  // Not floating (ml_device_lost turns it off): it holds the loop; gone before its fd.
  if (tun_source_) sd_event_source_disable_unref(tun_source_);
  ml_dev_.reset();                                // the tun goes, with its addresses and routes
  while (!sysctls_.empty()) sysctls_.pop_back();  // restore in reverse order
  // What no guard holds: originals of a dead agent's settings (--cleanup, or
  // a start that failed before taking them over). Then the file goes.
  if (sysctl_store_) sysctl_store_->restore_all();
  if (loop_) sd_event_unref(loop_);
  if (tun_discarded_)
    log::info("discarded {} packets the stack sent through {} to no peer (e.g. IPv6 MLD)",
              tun_discarded_, cfg_.node.ml_device);
  if (owned) log::info("removed everything this agent created");
}

Status Agent::apply() {
  if (auto s = refuse_if_running(); !s) return s;
  if (auto s = make_run_dir(); !s) return s;
  if (auto s = open_sysctl_store(); !s) return s;
  if (auto s = apply_sysctls(); !s) return s;
  if (auto s = create_ml_device(); !s) return s;
  if (auto s = load_datapath(); !s) return s;
  auto ev = nl::EventSocket::open();  // before the neighbours, so no change is missed
  if (!ev) return ev.error();
  events_.emplace(std::move(*ev));
  if (auto s = start_liveness(); !s) return s;
  ControllerDeps deps{*dp_, neighbour_ops_, bfd_peers_.get(),
                      [this](nlohmann::json e) { publish(std::move(e)); }};
  deps.max_peers = cfg_.node.max_peers;
  std::vector<Prefix> own(cfg_.node.ml_address.begin(), cfg_.node.ml_address.end());
  controller_ = std::make_unique<LinkSetController>(std::move(deps), own, Spreading::of(cfg_.node));
  controller_->set_links(std::move(links_));
  controller_->set_static_plans(std::move(static_plans_));
  controller_->adopt(std::move(adopted_));
  sync_peers("start");
  if (auto s = start_discovery(); !s) return s;
  if (cfg_.peers.empty() && !discovery_)
    log::warn("no [[peer]] and no [discovery]: this node reaches nobody");
  return {};
}

Status Agent::start_liveness() {
  if (!cfg_.bfd.enabled) return {};
  Liveness::Options o{cfg_.bfd, cfg_.node.rx_mode == config::RxMode::Redirect,
                      run_path(".bfd.json"), dp_->bfd_socket_filter_fd()};
  o.resume = adopting_;  // else the sessions' datapath is gone: only the numbers go on
  o.echo_table = dp_->echo_table();
  liveness_ = Liveness::create(
      std::move(o),
      [this](Liveness::Id t, const bfd::Transition& tr) { controller_->on_transition(t, tr); },
      [this](Liveness::Id t, bool lossy, unsigned lost) { controller_->on_loss(t, lossy, lost); });
  bfd_peers_ = std::make_unique<BfdPeerFilter>(*liveness_, *dp_, [](const std::string& dev) {
    return static_cast<int>(if_nametoindex(dev.c_str()));
  });
  log::info(
      "BFD {} ms x {}, {}", cfg_.bfd.interval_ms, cfg_.bfd.multiplier,
      cfg_.bfd.keys.empty() ? "unauthenticated (allow_unauthenticated)" : "Meticulous Keyed SHA1");
  return {};
}

Status Agent::start_discovery() {
  if (!cfg_.discovery.enabled) return {};
  discovery::Options o{
      cfg_.discovery, cfg_.node.id, cfg_.node.ml_address, {}, dp_->topo_socket_filter_fd()};
  for (const auto& [id, l] : links()) o.links.emplace(id, discovery_link(l));
  auto d = discovery::Discovery::create(std::move(o), [this](const std::vector<std::string>& ids) {
    controller_->on_nodes(discovery_->table().nodes(), ids, "discovery");
  });
  if (!d) return d.error();
  discovery_ = std::move(*d);
  return {};
}

void Agent::sync_peers(const char* why) {
  std::vector<PeerPlan> heard;
  if (discovery_) heard = controller_->plan_nodes(discovery_->table().nodes());
  controller_->sync(heard, why);
}

// Also per link: set_link_sysctls(). Originals go through the store, so a
// restarted agent restores the values from before the first agent, not its.
Status Agent::apply_sysctls() {
  auto g = SysctlGuard::set("net/ipv4/conf/all/arp_announce", "2", sysctl_store_.get());
  if (!g) return g.error();
  sysctls_.push_back(std::move(*g));
  for (const auto& [id, l] : links_)
    if (auto s = set_link_sysctls(id, l); !s) return s;
  sysctl_store_->restore_unclaimed();
  return {};
}

Status Agent::create_ml_device() {
  auto dev = adopting_ ? nl::TunDevice::adopt(cfg_.node.ml_device)
                       : nl::TunDevice::create(cfg_.node.ml_device);
  if (!dev) return dev.error();
  ml_dev_.emplace(std::move(*dev));
  int idx = ml_dev_->ifindex();
  fit_ml_mtu();
  if (auto s = rtnl_.link_set_up(idx, true); !s) return s;
  for (const auto& p : cfg_.node.ml_address)
    if (auto s = rtnl_.addr_add(idx, p); !s && !(adopting_ && s.error().err == EEXIST)) return s;
  log::info("{} {} (tun, ifindex {})", adopting_ ? "adopted" : "created", cfg_.node.ml_device, idx);
  return {};
}

Status Agent::load_datapath() {
  if (auto s = datapath::ensure_bpffs(cfg_.node.bpffs); !s) return s;
  auto dp =
      datapath::BpfDatapath::load({ml_dev_->ifindex(), pin_dir(), adopting_, cfg_.node.max_peers});
  if (!dp) return dp.error();
  dp_ = std::move(*dp);
  if (adopting_ && dp_->adopted()) {  // else: maps of another ABI or size, replaced (logged)
    auto addrs = dp_->peer_addresses();
    if (!addrs) return addrs.error();
    for (const auto& a : *addrs)
      if (auto v = dp_->get_peer(a)) adopted_[a] = *v;
    log::info(
        "adopted the datapath of an agent that died: {} peer entries keep forwarding "
        "until relearned (at most {} s)",
        adopted_.size(), kAdoptGraceUsec / 1000000);
  }
  if (auto s = dp_->attach_egress(ml_dev_->ifindex()); !s) return s;
  if (cfg_.node.rx_mode == config::RxMode::Redirect)
    for (const auto& [id, l] : links_)
      if (auto s = dp_->attach_ingress(l.ifindex); !s) return s;
  for (const auto& p : cfg_.node.ml_address)
    if (auto s = dp_->add_local(p.addr); !s) return s;
  log::info("datapath loaded, maps pinned in {}, rx_mode {}", pin_dir(),
            config::to_string(cfg_.node.rx_mode));
  return {};
}

// Re-reads what the events tell, in case some were lost, and re-adds a
// managed neighbour that someone deleted (e.g. `ip neigh flush`).
void Agent::resync() {
  std::map<size_t, unsigned> flags;
  std::set<int> link_local_ready;
  for (const auto& [id, link] : links()) {
    if (auto info = rtnl_.link_get(link.ifindex)) flags[id] = info->flags;
    if (auto addrs = rtnl_.addr_dump(link.ifindex))
      for (const auto& a : *addrs)
        if (a.prefix.addr.is_link_local_v6() && !(a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))
          link_local_ready.insert(link.ifindex);
  }
  controller_->resync(flags, link_local_ready);
}

// What the stack sends through the ML device reaches the tun's fd only when
// no program redirected it: packets to no peer.
void Agent::discard_tun_packets() {
  char buf[65536];
  ssize_t n;
  while ((n = read(ml_dev_->fd(), buf, sizeof(buf))) > 0) tun_discarded_++;
  // A tun whose device was deleted reads EBADFD for ever (and polls ready): not a wait.
  if (n < 0 && errno != EAGAIN && errno != EINTR)
    ml_device_lost(std::string("unreadable: ") + strerror(errno));
}

int Agent::on_signal(sd_event_source* s, const signalfd_siginfo* si, void* self) {
  if (si->ssi_signo == SIGHUP) {
    static_cast<Agent*>(self)->reload("SIGHUP");
    return 0;
  }
  log::info("signal {}: stopping", strsignal(static_cast<int>(si->ssi_signo)));
  return sd_event_exit(sd_event_source_get_event(s), 0);
}

int Agent::on_netlink(sd_event_source*, int, uint32_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  uint64_t t0 = monotonic_us(), cpu0 = thread_cpu_us();
  uint64_t writes0 = a->controller_->entry_writes();
  std::vector<nl::LinkEvent> link_events;
  auto s = a->events_->read_all([&](const nl::Event& ev) {
    a->controller_->on_netlink(ev);
    if (const auto* l = std::get_if<nl::LinkEvent>(&ev)) link_events.push_back(*l);
  });
  auto lost = a->controller_->after_netlink("netlink event");
  if (!lost.empty()) {
    // What the scale target measures: agent time from reading the
    // carrier loss to every affected entry rewritten.
    // (Wall time includes what else ran on the CPU meanwhile; CPU time is the agent's own.)
    a->carrier_loss_us_ = monotonic_us() - t0;
    uint64_t cpu = thread_cpu_us() - cpu0;
    std::string names;
    for (size_t id : lost) names += (names.empty() ? "" : ",") + a->links().at(id).device;
    log::info("carrier loss on {}: {} peer entries rewritten in {} us ({} us of CPU)", names,
              a->controller_->entry_writes() - writes0, a->carrier_loss_us_, cpu);
  }
  a->controller_->after_rewrite("netlink event");  // logs, monitor events, neighbour renewal
  a->on_link_events(link_events);  // after the carrier loss is handled: that is the fast part
  if (!s) {
    log::warn("{}; resyncing", s.error().message);
    a->resync();
  }
  return 0;
}

int Agent::on_tun(sd_event_source*, int, uint32_t, void* self) {
  static_cast<Agent*>(self)->discard_tun_packets();
  return 0;
}

int Agent::on_resync_timer(sd_event_source* src, uint64_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  a->resync();
  a->recover_links();
  if (a->liveness_) a->liveness_->checkpoint();
  return rearm(src, kResyncUsec);
}

// Whatever the previous agent wrote and we have not relearned by now is gone.
int Agent::on_adopt_timer(sd_event_source*, uint64_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  a->controller_->end_adoption();
  if (a->bfd_peers_)
    if (auto present = a->dp_->bfd_peers(); present)
      if (size_t n = a->bfd_peers_->prune(*present))
        log::info("adoption over: {} BFD peers of the previous agent no longer reflected", n);
  return 0;
}

int Agent::on_rebalance_timer(sd_event_source* src, uint64_t, void* self) {
  static_cast<Agent*>(self)->controller_->rebalance();
  return rearm(src, kRebalanceUsec);
}

Status Agent::add_timer(uint64_t period_usec, int (*handler)(sd_event_source*, uint64_t, void*)) {
  // Accuracy 0 would mean sd-event's default of 250 ms: far too coarse here.
  int r = sd_event_add_time(loop_, nullptr, CLOCK_MONOTONIC, now_usec(loop_) + period_usec,
                            kTimerAccuracyUsec, handler, this);
  if (r < 0) return os_error("add timer", r);
  return {};
}

Status Agent::run() {
  sigset_t mask;  // sd-event needs them blocked; mlinkd blocks them before apply()
  sigemptyset(&mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  if (int r = sd_event_new(&loop_); r < 0) return os_error("create event loop", r);
  for (int sig : {SIGTERM, SIGINT, SIGHUP})
    if (int r = sd_event_add_signal(loop_, nullptr, sig, on_signal, this); r < 0)
      return os_error("watch signal", r);
  if (int r = sd_event_add_io(loop_, nullptr, events_->fd(), EPOLLIN, on_netlink, this); r < 0)
    return os_error("watch netlink events", r);
  if (int r = sd_event_add_io(loop_, &tun_source_, ml_dev_->fd(), EPOLLIN, on_tun, this); r < 0)
    return os_error("watch ML device", r);
  if (auto st = add_timer(kResyncUsec, on_resync_timer); !st) return st;
  if (auto st = add_timer(kRebalanceUsec, on_rebalance_timer); !st) return st;
  if (adopting_)
    if (auto st = add_timer(kAdoptGraceUsec, on_adopt_timer); !st) return st;
  if (liveness_)
    if (auto st = liveness_->attach(loop_); !st) return st;
  if (discovery_)
    if (auto st = discovery_->attach(loop_); !st) return st;
  if (auto st = start_control(); !st) return st;
  if (auto st = start_metrics(); !st) return st;
  // Under WatchdogSec= (WATCHDOG_USEC/WATCHDOG_PID set), sd-event sends WATCHDOG=1 from
  // the loop itself, so a loop stuck in a handler stops the pings and systemd restarts
  // the agent. Without them this is a no-op.
  int wd = sd_event_set_watchdog(loop_, 1);
  if (wd < 0) return os_error("enable watchdog", wd);
  if (wd > 0) log::info("systemd watchdog on: the loop sends WATCHDOG=1");
  sd_notify(0, "READY=1");
  log::info("running: {} peers, {} links", controller_->registry().peers().size(), links().size());
  int r = sd_event_loop(loop_);
  sd_notify(0, "STOPPING=1");
  if (fatal_) return *fatal_;
  if (r < 0) return os_error("event loop", r);
  return {};
}

}  // namespace mlink::agent
