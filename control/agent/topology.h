// topology.h - the static link plan of each peer, in canonical order.
//
// Both ends order a peer's links by the link's subnet (which both share) and
// derive each link's rendezvous id from it, so they build identical bucket
// tables and the symmetric hash keeps a flow's two directions on one link.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/ip.h"
#include "config/config.h"
#include "discovery/neighbors.h"

namespace mlink::agent {

struct LocalLink {
  std::string device;
  int ifindex = 0;
  std::vector<Prefix> addresses;  // as read from the kernel
  unsigned flags = 0;             // IFF_*, kept current from netlink
  uint32_t weight = 1;
  bool backup = false;
  bool drain = false;  // run time (mlinkctl link set DEV drain): no buckets, session kept
};

// This node's links by link id. An id is never reused while the agent runs,
// so links can come and go (mlinkctl link add/del, reload) while everything
// that refers to one by id (plans, sessions, discovery) stays right.
using Links = std::map<size_t, LocalLink>;

struct PeerLink {
  size_t link = 0;            // link id (Links)
  Prefix subnet;              // canonical order key (network address)
  uint64_t id = 0;            // rendezvous id, derived from subnet
  std::optional<IpAddr> nh4;  // peer's next hop on this link, per family
  std::optional<IpAddr> nh6;
  uint32_t weight = 1;  // what both ends agree on (see plan_discovered)
  bool backup = false;
  bool drain = false;  // either end drains it
};

// Who a peer is: a [[peer]] by its first ML address (so a reload that adds or
// removes another [[peer]] leaves it alone), or a discovered node by its id.
struct PeerKey {
  enum class Kind : uint8_t { Static, Node };
  Kind kind = Kind::Static;
  std::string id;  // the first ML address, or the node id

  static PeerKey of_static(const IpAddr& first_ml_address) {
    return {Kind::Static, first_ml_address.str()};
  }
  static PeerKey of_node(std::string node_id) { return {Kind::Node, std::move(node_id)}; }
  bool is_node() const { return kind == Kind::Node; }
  std::string str() const { return (kind == Kind::Static ? "static:" : "node:") + id; }
  auto operator<=>(const PeerKey&) const = default;
};

// How a peer's traffic is spread over its links ([node] hash, spread,
// flowlet_gap_us and socket_queue_limit; a [[peer]] may override the first two).
struct Spreading {
  config::HashPolicy hash = config::HashPolicy::L34;
  config::Spread spread = config::Spread::Flow;
  uint32_t flowlet_gap_us = config::kDefaultFlowletGapUs;
  std::optional<uint32_t> socket_queue_limit;  // unset: by spread (config.h)
  static Spreading of(const config::Node& n) {
    return {n.hash, n.spread, n.flowlet_gap_us, n.socket_queue_limit};
  }
  bool operator==(const Spreading&) const = default;
};

struct PeerPlan {
  PeerKey key;
  uint32_t peer_id = 0;
  std::vector<IpAddr> ml_addresses;
  std::vector<PeerLink> links;  // canonical order; position = datapath slot
  config::HashPolicy hash = config::HashPolicy::L34;
  config::Spread spread = config::Spread::Flow;
  uint32_t flowlet_gap_us = config::kDefaultFlowletGapUs;
  uint32_t socket_queue_limit = 0;  // [node] socket_queue_limit
};

struct PlanError {
  int line = 0;
  std::string key;
  std::string message;
};

// Builds every peer's plan; fails (naming the config line/key) when a next
// hop is not inside any subnet of its link. A via whose device is not among
// the links (taken out by `mlinkctl link del`) is left out.
std::variant<std::vector<PeerPlan>, PlanError> plan_peers(const config::Config& cfg,
                                                          const Links& links);

// The plan of a node learned by discovery: the links it is heard on two-way,
// with next hops inside our subnet of that link. Both ends must build the
// same table, so each link's weight is the smaller of the two ends' and it
// is a backup if either end says so (from the node's LINKS; until that
// arrives, ours). nullopt when no link qualifies.
std::optional<PeerPlan> plan_discovered(const discovery::Node& node, const Links& links,
                                        const Spreading& spreading);

// The next hop a packet to ml_addr uses on this link: same family if there
// is one; an IPv4 packet may fall back to an IPv6 next hop (RFC 5549 style).
std::optional<IpAddr> next_hop_for(const PeerLink& l, const IpAddr& ml_addr);

uint64_t subnet_id(const Prefix& subnet);

}  // namespace mlink::agent
