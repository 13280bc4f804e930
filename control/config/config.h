// config.h - the validated configuration of one mlinkd node.
//
// load() parses TOML (toml++) and validates everything that needs no system
// access: unknown keys, types, addresses, duplicates, references between
// sections. check_devices() validates what does (devices exist). Every error
// names the file, line and key, so an operator can fix it at once; a config
// that fails either check is never applied.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.h"
#include "common/keyfile.h"

namespace mlink::config {

enum class HashPolicy { L34, Socket };  // "l34", "socket"
enum class RxMode { Redirect, Loose };  // "redirect", "loose"
enum class Spread { Flow, Flowlet };    // "flow", "flowlet" (mlink_abi.h, enum ml_spread)

// [node] flowlet_gap_us: in flowlet mode a flow moves to another link only
// after a pause this long, which must exceed the links' delay difference.
// (Host queues are socket_queue_limit's business, below.)
inline constexpr uint32_t kDefaultFlowletGapUs = 100;

// [node] socket_queue_limit: bytes a local TCP socket may have queued in the
// host toward ML peers before ml0 refuses its next packet, which TCP takes as
// local congestion (bpf/lib/socket_queue.h). 0: no limit. At least 64 KiB, so
// a socket with nothing else queued always proceeds. Unset, it depends on the
// peer's spread: none in flow mode; 64 KiB in flowlet mode, where it keeps a
// socket to one packet in the links' queues, so a new flowlet cannot overtake
// the last one.
inline constexpr uint32_t kMinSocketQueueLimit = 65536;
inline constexpr uint32_t kMaxSocketQueueLimit = 1U << 30;
inline constexpr uint32_t kFlowletSocketQueueLimit = 65536;

// [node] max_peers: how many peers the datapath's maps hold (sized at load,
// docs/OPERATIONS.md "Limits"). The bounds are mlink_abi.h's ML_DEFAULT_PEERS
// and ML_PEERS_LIMIT (the agent asserts they agree).
inline constexpr uint32_t kDefaultMaxPeers = 1024;
inline constexpr uint32_t kMaxPeersLimit = 16384;

struct Node {
  std::string id;                                  // [a-zA-Z0-9_-]{1,32}; names pins, logs, metrics
  std::vector<Prefix> ml_address;                  // at least one; at most one per family
  std::string ml_device = "ml0";                   // IFNAMSIZ-1 chars at most
  HashPolicy hash = HashPolicy::L34;               // default for peers
  Spread spread = Spread::Flow;                    // default for peers
  uint32_t flowlet_gap_us = kDefaultFlowletGapUs;  // 10..1000000
  std::optional<uint32_t> socket_queue_limit;      // 0 or kMin..kMax; unset: by spread
  RxMode rx_mode = RxMode::Redirect;               // redirect: ingress program, strict rp_filter ok
  std::string bpffs = "/sys/fs/bpf";               // pins go to <bpffs>/mlink/<id>/
  uint32_t max_peers = kDefaultMaxPeers;           // 1..kMaxPeersLimit; [[peer]]s count too
  int line = 0;
};

// The socket_queue_limit of a peer spread `spread`, given the configured one (see
// kFlowletSocketQueueLimit).
inline uint32_t socket_queue_limit_for(std::optional<uint32_t> configured, Spread spread) {
  return configured.value_or(spread == Spread::Flowlet ? kFlowletSocketQueueLimit : 0);
}

struct Link {
  std::string device;
  uint32_t weight = 1;  // 1..255
  bool backup = false;
  int line = 0;
};

struct Via {
  std::string device;           // must be a [[link]] device
  std::vector<IpAddr> address;  // the peer's next hops on that link, one per family
  int line = 0;
};

struct Peer {
  std::vector<IpAddr> ml_address;  // at least one; at most one per family
  std::vector<Via> via;            // at least one; a device at most once
  std::optional<HashPolicy> hash;  // overrides node.hash
  std::optional<Spread> spread;    // overrides node.spread
  int line = 0;
};

// Liveness of every (peer, link) by single-hop BFD (RFC 5880/5881). A link
// carries traffic only while its session is Up. Detection time is
// interval_ms × multiplier: the default 30 × 3 = 90 ms sits well inside
// TCP's 200 ms minimum RTO.
// With key_file, every packet is signed and checked with Meticulous Keyed
// SHA1 (RFC 5880 §6.7.4); without it BFD runs only when the operator says
// allow_unauthenticated = true (e.g. against a peer that has no BFD auth).
struct Bfd {
  bool enabled = true;
  uint32_t interval_ms = 30;            // 10..10000: desired tx and required rx
  uint32_t multiplier = 3;              // 1..255
  std::string key_file;                 // "<id 0..255> <hex, 1..20 bytes>" per line
  KeyMap keys;                          // read from key_file by load(); every key verifies
  std::optional<uint32_t> send_key_id;  // the key that signs; none: the highest id
  bool allow_unauthenticated = false;
  bool echo = true;  // RFC 5880 §6.4 Echo, reflected by the peer's datapath
  int line = 0;
};

// Topology protocol (docs/PROTOCOL.md): hellos on every link to the
// link-local groups and to static peers' addresses. On when [discovery] is
// present; it needs a key file (HMAC-SHA-512-256 keys).
struct Discovery {
  bool enabled = false;
  uint16_t port = 28012;
  IpAddr group4 = *IpAddr::parse("224.0.0.200");
  IpAddr group6 = *IpAddr::parse("ff02::6d6c");
  uint32_t hello_interval_ms = 1000;    // 100..60000; hold time is 3.5 × this
  std::string key_file;                 // "<id 0..65535> <64 hex digits>" per line
  KeyMap keys;                          // read from key_file by load(); every key verifies
  std::optional<uint32_t> send_key_id;  // the key that signs; none: the highest id
  int line = 0;
};

// Prometheus /metrics. On by default, on loopback only (in the agent's
// network namespace); listen = "" turns it off.
struct Metrics {
  std::string listen = "127.0.0.1:9464";  // IP:PORT, [IPv6]:PORT
  int line = 0;
};

struct Config {
  std::string path;
  Node node;
  Bfd bfd;
  Discovery discovery;
  Metrics metrics;
  std::vector<Link> links;  // at least one; devices unique
  std::vector<Peer> peers;  // ML addresses unique across peers and not local
};

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when unknown (e.g. file unreadable)
  int column = 0;   // 1-based; 0 when unknown
  std::string key;  // dotted path, e.g. "peer[1].via[0].address"
  std::string message;
  // "FILE:LINE:COL: KEY: MESSAGE" (LINE/COL omitted when 0)
  std::string str() const;
};

struct LoadResult {
  std::optional<Config> config;
  std::optional<ConfigError> error;
};

LoadResult load(const std::string& path);
LoadResult parse(const std::string& text, const std::string& path);  // for tests

// Returns true when a network device of that name exists (if_nametoindex in
// production; a fake in tests).
using DeviceExists = std::function<bool(const std::string&)>;
std::optional<ConfigError> check_devices(const Config& cfg, const DeviceExists& exists);

// A reload (mlinkctl reload, SIGHUP) applies changes to [[link]], [[peer]],
// node.hash and both protocols' keys (the key files and send_key_id; a key
// rotation) at run time. A change to anything else, turning BFD
// authentication on or off included, needs a restart: the first such key, so
// the reload is refused and the running config kept.
std::optional<ConfigError> restart_only_change(const Config& running, const Config& next);

const char* to_string(HashPolicy p);
const char* to_string(Spread s);
const char* to_string(RxMode m);

}  // namespace mlink::config
