// sim.h - N simulated mlink peers × L links in one process, facing one real mlinkd.
//
// Each simulated node k has, on link i (device <dev_prefix>i), the address
// 10.i.(k/250).(k%250+2) and the ML address 10.88.(k/250).(k%250+2); node ids are
// <id_prefix>0001... The caller (bench/scale.sh) puts the addresses on the devices; the
// simulator binds one socket per (link, port) to the device and tells the nodes apart by the
// destination address of what arrives (IP_PKTINFO) and by the source it sends from.
//
// Topology protocol (docs/PROTOCOL.md) per node: its own sequence (epoch = wall clock + 1), a
// multicast HELLO on every link every hello interval (jittered ±10 %) whose SEEN names the
// agent once the agent was heard there (or, with seen_page, a rotating page of 16 of every
// node on the segment, as a real segment of N+1 nodes would send), multicast LINKS every 10 s,
// and on first hearing the agent (or a new epoch of it) a unicast HELLO naming it plus a
// unicast LINKS, as the protocol's "Answers" say; a unicast HELLO with ANSWER is answered,
// rate-limited. Everything the agent sends unicast to a node is authenticated and replay-
// checked, then used or ignored.
//
// BFD: one bfd::Session per (node, link), Meticulous Keyed SHA1, sent from the node's link
// address (source port 49152 + link) to the agent's (learned from its HELLO, or its first
// control packet) port 3784, TTL 255; Required Min Echo RX Interval advertised, and echoes
// reflected in the kernel by the project's ml_ingress (reflector.h). The agent's group echoes
// (one per link and interval to 224.0.0.1) are reflected here, in user space, once per node of
// the link whose session started and is not silenced: what N mlink peers' datapaths would send
// back, from each node's address, port 3785, TTL 255, the payload unchanged. Once Up toward an
// agent that advertises echo, a session slows its control packets to 1 s by a Poll Sequence, as an
// mlink peer does when its own echo becomes active (the simulator sends no echoes itself).
//
// Fault injection (control FIFO, one command a line):
//   silence K I   node index K (0-based), link I: its control packets stop and the agent's
//                 echoes to it are dropped before the reflector (drop.bpf.c); the instant is
//                 printed (CLOCK_REALTIME µs: t0 before, t1 once both are in force)
//   restore K I   undoes it
//   stats         prints the counters now
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bfd/session.h"
#include "common/result.h"
#include "net.h"
#include "proto/bfd/codec.h"
#include "proto/topo/codec.h"
#include "proto/topo/replay.h"
#include "reflector.h"

struct sd_event;
struct sd_event_source;

namespace mlink::sim {

struct Options {
  unsigned peers = 10;
  unsigned links = 4;
  std::string dev_prefix = "eth";
  std::string id_prefix = "sim";
  std::string topo_key_file;
  std::string bfd_key_file;
  uint16_t topo_port = topo::kDefaultPort;
  std::string group = "224.0.0.200";
  uint32_t hello_ms = 1000;
  uint32_t links_ms = 10000;
  uint32_t answer_spread_ms = 0;  // spread the answers to a new agent over this long
  bool seen_page = false;
  uint32_t interval_ms = 30;  // BFD desired tx / required rx while Up
  uint8_t multiplier = 3;
  uint32_t echo_rx_ms = 30;  // advertised Required Min Echo RX Interval (0: no echo)
  bool slow_control = true;  // 1 s control once Up toward an echoing agent
  bool reflect = true;       // attach ml_ingress (in-kernel echo reflection)
  bool group_echo = true;    // reflect the agent's group echoes, every node (sim_bfd.cpp)
  std::string control;       // FIFO for fault injection ("" = none)
  unsigned stats_s = 5;
};

class Sim {
 public:
  static Result<std::unique_ptr<Sim>> create(const Options& o);
  ~Sim();
  int run();  // until SIGTERM / SIGINT

 private:
  enum Kind : uint64_t { kSession = 0, kHello = 1, kLinks = 2, kAnswer = 3, kStats = 4 };
  struct Link {
    std::string dev;
    int ifindex = 0;
    int topo_fd = -1, bfd_rx_fd = -1, bfd_tx_fd = -1, echo_fd = -1;
    std::unique_ptr<BatchTx> topo_tx, bfd_tx, echo_tx;
    std::string agent_id;
    in_addr agent_addr{};
    bool agent_known = false;
    uint32_t agent_epoch = 0;
    uint64_t agent_until = 0;  // heard within its hold time until then
    topo::ReplayGuard replay;
  };
  struct Node {
    std::string id;
    topo::Sequencer seq{0};
    size_t page = 0;  // seen_page cursor
  };
  struct Sess {  // one per (node, link), index link * peers + node
    std::optional<bfd::Session> s;
    uint32_t tx_seq = 0;
    std::optional<uint32_t> rx_seq;
    uint32_t remote_echo_us = 0;
    bool started = false, silent = false, slowed = false;
    uint64_t at = 0;  // its entry in timers_ (0: none)
  };
  struct PerNodeLink {            // topology state of (node, link)
    uint32_t answered_epoch = 0;  // the agent epoch this node answered
    bool named = false;           // the agent named this node in a SEEN
    bool answer_pending = false, answer_links = false;
    uint64_t last_answer_us = 0, answer_at = 0;
  };

  explicit Sim(const Options& o) : o_(o) {}
  Status setup();
  static int on_io(sd_event_source*, int fd, uint32_t, void* self);
  static int on_timer(sd_event_source*, uint64_t, void* self);
  static int on_control(sd_event_source*, int fd, uint32_t, void* self);
  void topo_rx(unsigned link, uint64_t now);
  void bfd_rx(unsigned link, uint64_t now);
  void group_echo_rx(unsigned link);
  void handle_topo(unsigned link, const Rx& r, uint64_t now);
  void handle_bfd(unsigned link, const Rx& r, uint64_t now);
  void run_due(uint64_t now);
  void send_hello(unsigned node, uint64_t now);
  void send_links(unsigned node);
  void answer(unsigned node, unsigned link, bool with_links, uint64_t now);
  void send_topo(unsigned node, unsigned link, const topo::Message& m, in_addr dst);
  void start_sessions(unsigned link, uint64_t now);
  void allow_echoes(unsigned link);
  void session_step(size_t idx, std::optional<bfd::Transition> tr, uint64_t now);
  void send_due(size_t idx, uint64_t now);
  void schedule(Kind kind, size_t idx, uint64_t* slot, uint64_t when);
  void flush();
  void rearm();
  void command(const std::string& line);
  void print_stats(uint64_t now);
  std::vector<std::string> seen_page(unsigned node, unsigned link);

  in_addr link_addr(unsigned link, unsigned node) const;
  in_addr ml_addr(unsigned node) const;
  std::optional<unsigned> node_of(in_addr a, unsigned link) const;
  std::optional<unsigned> node_of_id(const std::string& id) const;

  Options o_;
  topo::KeyRing topo_keys_;
  topo::Key topo_send_key_;
  bfd::KeyRing bfd_keys_;
  uint8_t bfd_key_id_ = 0;
  std::vector<uint8_t> bfd_key_;
  in_addr group_{};
  uint64_t start_us_ = 0;  // epoch start: nothing is sent before
  std::vector<Link> links_;
  std::vector<Node> nodes_;
  std::vector<Sess> sess_;
  std::vector<PerNodeLink> pnl_;  // index link * peers + node
  std::vector<uint64_t> hello_at_, links_at_;
  uint64_t stats_at_ = 0;
  std::set<std::pair<uint64_t, uint64_t>> timers_;  // (when, kind << 40 | index)
  topo::Links links_body_;
  std::vector<std::string> sorted_ids_;  // seen_page: every sim node id, sorted
  std::unique_ptr<Reflector> reflector_;
  std::minstd_rand rng_{std::random_device{}()};
  sd_event* loop_ = nullptr;
  sd_event_source* timer_ = nullptr;
  std::vector<sd_event_source*> io_;
  int control_fd_ = -1;
  std::string control_buf_;

  struct Counters {
    uint64_t bfd_rx = 0, bfd_tx = 0, bfd_rejected = 0, bfd_unmatched = 0, bfd_bad_ttl = 0;
    uint64_t bfd_silenced = 0, tx_failed = 0, group_echoes = 0, group_reflected = 0;
    uint64_t topo_rx = 0, topo_tx = 0, topo_rejected = 0, topo_replay = 0, topo_bad_ttl = 0;
    uint64_t topo_rx_unicast = 0, answers = 0, asks = 0, ups = 0, downs = 0;
  } c_;
};

}  // namespace mlink::sim
