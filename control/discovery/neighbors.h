// neighbors.h - what this node has heard from other nodes, per link.
//
// Pure state, driven by decoded HELLO and LINKS messages and a clock, so the
// rules are unit-tested without sockets. A node is "on" a link while its
// HELLOs there keep arriving within their hold time. A link joins the node's
// shared set once two-way visibility is proven (its HELLO lists us in SEEN)
// and stays while HELLOs keep arriving: a restarted peer's first HELLO, which
// cannot list us yet, must not take a working link out (BFD says whether it
// works).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "proto/topo/codec.h"

namespace mlink::discovery {

struct HeardLink {
  std::vector<Prefix> link_addrs;  // the node's addresses on our link, from its HELLO
  bool two_way = false;            // it listed us in SEEN (sticky while heard)
  uint64_t expires_us = 0;
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
  explicit NeighborTable(std::string self) : self_(std::move(self)) {}

  struct Change {
    bool plan = false;      // what the link sets are computed from changed
    bool new_node = false;  // first hello from this node on this link (answer at once)
  };
  Change on_hello(size_t link, const std::string& id, uint64_t seq, const topo::Hello& h,
                  uint64_t now_us);
  bool on_links(const std::string& id, const topo::Links& l);  // true: policy changed
  bool expire(uint64_t now_us);  // forgets links past their hold time; true if any
  void forget_link(size_t link);

  std::vector<std::string> seen_on(size_t link) const;  // our SEEN list for that link
  std::optional<uint64_t> next_expiry() const;
  const std::map<std::string, Node>& nodes() const { return nodes_; }

 private:
  std::string self_;
  std::map<std::string, Node> nodes_;
};

}  // namespace mlink::discovery
