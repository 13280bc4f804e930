// discovery.h - the topology protocol on every link (docs/PROTOCOL.md).
//
// Sends HELLO on every link to the link-local groups and to static peers'
// addresses every hello_interval (jittered), naming the nodes heard there a
// page at a time; answers a node heard for the first time (or restarted, or
// asking) with a unicast HELLO naming it and, to a new one, LINKS; sends
// LINKS everywhere every 10 s. So two-way visibility takes one round trip on
// a segment of any size (docs/PROTOCOL.md, "Two-way visibility"). Receives
// in batches, authenticates, checks replay and feeds the NeighborTable. Every
// rejected packet is counted by reason and changes nothing. The agent is told
// once per batch which nodes changed what it plans peers from.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/log.h"
#include "common/result.h"
#include "config/config.h"
#include "discovery/neighbors.h"
#include "discovery/socket.h"
#include "proto/topo/codec.h"
#include "proto/topo/replay.h"

struct sd_event;
struct sd_event_source;

namespace mlink::discovery {

// A link as the topology protocol speaks on it (HELLO, LINKS).
struct ProtocolLink {
  std::string device;
  int ifindex = 0;
  std::vector<Prefix> addresses;  // link-local ones are left out of the protocol
  uint8_t weight = 1;
  bool backup = false;
  bool drain = false;
  std::vector<IpAddr> unicast;  // static peers' addresses on this link
};

struct Options {
  config::Discovery cfg;
  std::string node_id;
  std::vector<Prefix> ml_addrs;
  std::map<size_t, ProtocolLink> links;  // by the agent's link id
  int socket_filter_fd = -1;             // the datapath's guard for our sockets; -1: none
};

struct Counters {
  std::array<uint64_t, topo::kReasonCount> rejected{};  // by topo::Reason
  uint64_t bad_hop_limit = 0;                           // not 255: from farther than one hop
  uint64_t not_a_link = 0;                              // arrived on a device that is no link
  uint64_t rx_hello = 0, rx_links = 0, tx = 0, tx_errors = 0;
  uint64_t tx_unicast_hello = 0;              // answers and asks to one node (part of tx)
  uint64_t refused_nodes = 0;                 // HELLOs from a node past the table's limit
  std::map<topo::KeyId, uint64_t> rx_by_key;  // accepted, by the key id that signed them
};

class Discovery {
 public:
  // The ids of the nodes whose plan inputs changed (sorted, no repeats).
  using OnChange = std::function<void(const std::vector<std::string>& nodes)>;
  static Result<std::unique_ptr<Discovery>> create(Options opts, OnChange on_change);
  ~Discovery();

  Status attach(sd_event* loop);
  const NeighborTable& table() const { return table_; }
  // A link was added or changed (policy, addresses, static peers on it): a
  // new one joins the groups and says HELLO at once; every peer hears the
  // link set at once (LINKS on every link).
  Status set_link(size_t link, ProtocolLink l);
  // A link was taken out: it leaves the groups, what was heard on it is
  // forgotten, and the peers hear the smaller link set at once. The caller
  // replans (no OnChange from here).
  void remove_link(size_t link);
  // New keys (reload, a rotation): every key verifies, send_key_id signs (none: the highest
  // id). The replay state of a removed key id goes with it. Fails, changing nothing, when
  // there is no key or send_key_id is not one.
  Status set_keys(const KeyMap& keys, std::optional<uint32_t> send_key_id);
  topo::KeyId send_key_id() const { return send_key_.id; }
  Counters counters() const;
  // For tests and the fuzzer of the receive path: one datagram as if
  // received, then what it makes us send and the change report.
  void deliver(const Received& r, uint64_t now_us);
  // For tests: the timer's work at now_us (expiry, HELLOs due), then what it makes us send.
  void run_timer(uint64_t now_us);
  // Datagrams handed to the sockets and not yet sent (tests).
  std::vector<Outgoing> take_queued();

 private:
  Discovery(Options opts, OnChange on_change);
  static int on_readable(sd_event_source*, int, uint32_t, void*);
  static int on_timer(sd_event_source*, uint64_t, void*);
  void read_some(TopoSocket& s, uint64_t now_us);  // a bounded number of batches
  void handle(std::span<const uint8_t> bytes, const IpAddr& src, int ifindex, uint64_t now_us);
  void tick(uint64_t now_us);
  void flush(uint64_t now_us);
  void report_changes();
  topo::Hello hello_base(size_t link) const;
  topo::Links links_body() const;
  void send_hello(size_t link);
  void send_links(size_t link);
  void send_links_everywhere();
  // A unicast HELLO to one node on one link naming it (asking for an answer
  // while it has not named us), and LINKS if `with_links`.
  void answer(size_t link, const std::string& node, bool with_links, uint64_t now_us);
  Status membership(const ProtocolLink& l, bool join);
  // Encodes, signs and queues for the group and the static peers, or for
  // `to` alone; flush() sends what is queued.
  void send(size_t link, const topo::Message& m, const std::optional<IpAddr>& to = std::nullopt);
  void rearm();
  uint64_t now_us() const;
  uint64_t jittered_interval();

  Options opts_;
  OnChange on_change_;
  topo::KeyRing keys_;
  topo::Key send_key_;
  std::optional<topo::Sequencer> seq_;
  topo::ReplayGuard replay_;
  NeighborTable table_;
  std::vector<TopoSocket> sockets_;  // one per family
  Counters counters_;
  log::RateLimit reject_log_;  // rejected packets: 10 lines a second at most
  std::minstd_rand rng_{std::random_device{}()};
  uint64_t start_us_ = 0;  // nothing is sent before the epoch starts (docs/PROTOCOL.md)
  uint64_t next_hello_us_ = 0;
  uint64_t next_links_us_ = 0;
  std::set<size_t> hello_now_;  // new links: HELLO and LINKS there at once
  struct Answer {
    bool links = false;  // a new node: LINKS too
    bool asked = false;  // it set ANSWER (rate-limited)
  };
  std::map<std::pair<size_t, std::string>, Answer> answers_;  // (link, node) to answer
  std::set<std::string> changed_;                             // nodes to report
  std::vector<std::vector<Outgoing>> queued_;                 // per socket
  sd_event* loop_ = nullptr;
  sd_event_source* timer_ = nullptr;
  std::vector<sd_event_source*> io_;
};

}  // namespace mlink::discovery
