// neighbors.h - what this node has heard from other nodes, per link.
//
// Pure state, driven by decoded HELLO and LINKS messages and a clock, so the
// rules are unit-tested without sockets. A node is "on" a link while its
// HELLOs there keep arriving within their hold time. A link joins the node's
// shared set once two-way visibility is proven (a HELLO of its listed us in
// SEEN: a page of its multicast list, or the unicast answer naming just us)
// and stays while HELLOs keep arriving: a restarted peer's first HELLO, which
// cannot list us yet, must not take a working link out (BFD says whether it
// works). Work per HELLO is O(log n): expiry is kept in deadline order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/ip.h"
#include "proto/topo/codec.h"

namespace mlink::discovery {

// A sender's hold time is capped here, so one HELLO cannot pin a node in the
// table (and its peer entry) for up to 49 days (docs/PROTOCOL.md, "HELLO").
inline constexpr uint32_t kMaxHoldMs = 60'000;
// Nodes the table holds at most; a HELLO from one more is refused and counted.
inline constexpr size_t kDefaultMaxNodes = 16384;

struct HeardLink {
  std::vector<Prefix> link_addrs;  // the node's addresses on our link, from its HELLO
  bool two_way = false;            // it listed us in SEEN (sticky while heard)
  uint64_t expires_us = 0;
  uint64_t answered_us = 0;  // when we last sent it a unicast HELLO here (0: never)
};

struct Node {
  std::string id;
  std::vector<Prefix> ml_addrs;
  std::map<size_t, HeardLink> links;  // by our link index
  std::optional<topo::Links> policy;  // from its last LINKS, if any
  uint32_t epoch = 0;                 // of its sequence numbers: a new one means a restart
};

class NeighborTable {
 public:
  explicit NeighborTable(std::string self, size_t max_nodes = kDefaultMaxNodes)
      : self_(std::move(self)), max_nodes_(max_nodes) {}

  struct Change {
    bool plan = false;      // what the link sets are computed from changed
    bool new_node = false;  // first hello from this node on this link, or it restarted
    bool refused = false;   // the table is full: the node was not added
  };
  Change on_hello(size_t link, const std::string& id, uint64_t seq, const topo::Hello& h,
                  uint64_t now_us);
  bool on_links(const std::string& id, const topo::Links& l);  // true: policy changed
  // Forgets links past their hold time (and nodes left with none); returns
  // the ids of the nodes that changed.
  std::vector<std::string> expire(uint64_t now_us);
  std::vector<std::string> forget_link(size_t link);

  // Our SEEN list for a multicast HELLO on that link: the next `max` nodes
  // heard there, in id order from where the previous page stopped, so
  // successive HELLOs name every node however many there are.
  std::vector<std::string> seen_page(size_t link, size_t max);
  // Nodes heard on that link that have not listed us yet (they get a unicast
  // HELLO asking for an answer).
  std::vector<std::string> not_two_way(size_t link) const;
  void set_answered(size_t link, const std::string& id, uint64_t now_us);

  std::optional<uint64_t> next_expiry() const;
  const Node* find(const std::string& id) const;
  const std::map<std::string, Node>& nodes() const { return nodes_; }
  uint64_t refused() const { return refused_; }

 private:
  using Deadline = std::tuple<uint64_t, std::string, size_t>;  // expires, node, link
  std::string self_;
  size_t max_nodes_;
  std::map<std::string, Node> nodes_;
  std::set<Deadline> deadlines_;          // one per (node, link) heard
  std::map<size_t, std::string> cursor_;  // per link: the last id a SEEN page named
  uint64_t refused_ = 0;
};

}  // namespace mlink::discovery
