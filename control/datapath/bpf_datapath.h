// bpf_datapath.h - the datapath as loaded into the kernel: one libbpf skeleton
// (both programs, shared maps), loaded once and attached to the ML device and
// every link (attaching with `tc ... obj` would give each attachment its own
// maps: docs/FINDINGS.md, "Each tc attachment of an object file gets its own
// maps"). Maps are pinned under <bpffs>/mlink/<node id>/ for bpftool and
// mlinkctl. The destructor detaches and unpins everything.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "datapath/datapath.h"

struct mlink_bpf;  // the generated skeleton (mlink.skel.h)

namespace mlink::datapath {

struct LoadOptions {
  int ml_ifindex = 0;   // where ingress delivers ML traffic
  std::string pin_dir;  // e.g. /sys/fs/bpf/mlink/a
  // Reuse the maps pinned there by an agent that died: the datapath keeps its
  // peers and counters, and the new programs replace the old ones in place.
  // Maps of another ABI version or size are not reused (see adopted()).
  bool adopt = false;
  // Sizes ml_peer_stats (peer ids 0..max_peers-1) and ml_peers (2 x, one
  // entry per ML address) and ml_bfd_peers (ML_MAX_SLOTS x, one per
  // session); 1..ML_PEERS_LIMIT ([node] max_peers).
  uint32_t max_peers = ML_DEFAULT_PEERS;
};

// A map's shape as the kernel has it (BPF_OBJ_GET_INFO_BY_FD). value_size of
// a per-CPU map is one CPU's.
struct MapShape {
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
};
Result<MapShape> map_shape(int map_fd);
// The ABI version in a datapath's ml_abi map (0: never written).
Result<uint32_t> abi_version(int ml_abi_fd);

class BpfDatapath final : public Datapath {
 public:
  static Result<std::unique_ptr<BpfDatapath>> load(const LoadOptions& opts);
  ~BpfDatapath() override;
  BpfDatapath(const BpfDatapath&) = delete;
  BpfDatapath& operator=(const BpfDatapath&) = delete;

  Status attach_egress(int ifindex);   // on the ML device
  Status attach_ingress(int ifindex);  // on a link
  void detach_ingress(int ifindex);    // a link taken out at run time
  // mlinkd --cleanup: takes over the ingress program an agent that died left
  // on a link, if there is one (false: none), so that the destructor removes
  // it with its hook, as it would a restarted agent's.
  Result<bool> adopt_ingress(int ifindex);

  Status set_peer(const IpAddr& addr, const ml_peer& value) override;
  Status del_peer(const IpAddr& addr) override;
  Status add_local(const IpAddr& addr) override;
  Result<ml_peer_stats> peer_stats(uint32_t peer_id) override;
  Result<std::array<ml_counter, ML_DROP_MAX>> drops() override;
  // Ingress counters by enum ml_ingress_counter (delivered, echoes reflected,
  // what the guard refused).
  Result<std::array<ml_counter, ML_IN_MAX>> ingress_stats();
  Status set_bfd_peer(const ml_bfd_key& key, bool present, uint32_t slot = 0) override;
  Status set_link_addr(int ifindex, const IpAddr& local, bool present) override;
  EchoTable* echo_table() override { return echo_.get(); }
  Result<std::vector<ml_bfd_key>> bfd_peers();  // keys of ml_bfd_peers
  // The socket filters for the agent's BFD and topology sockets
  // (SO_ATTACH_BPF): they drop and count what the guard refuses.
  int bfd_socket_filter_fd() const;
  int topo_socket_filter_fd() const;
  Result<std::vector<IpAddr>> peer_addresses();  // keys of ml_peers
  Result<ml_peer> get_peer(const IpAddr& addr);

  int egress_prog_fd() const;
  // True when load() reused a dead agent's maps; false when asked to adopt
  // maps of another ABI or size: then it loaded fresh ones (logged).
  bool adopted() const { return adopted_; }
  uint32_t max_peers() const { return max_peers_; }

  // `flow get`: runs ml_egress on `frame` (Ethernet + IP) with
  // BPF_PROG_TEST_RUN and returns its decision (magic 0: not to a peer) and
  // verdict (TC_ACT_*). Test-run always parses an Ethernet frame, while the
  // live program reads the tun's bare IP packets (ml_l2_len 0); so this runs
  // the same object loaded with the 14-byte offset, on the live maps (loaded
  // at the first call). Counts one packet on the bucket it names.
  struct Probe {
    ml_decision decision{};
    uint32_t verdict = 0;
  };
  Result<Probe> probe(const std::vector<uint8_t>& frame);

 private:
  struct Attachment {
    int ifindex;
    int attach_point;   // BPF_TC_EGRESS / BPF_TC_INGRESS
    bool created_hook;  // we created clsact, so we remove it
  };
  BpfDatapath() = default;
  Status reuse_pins();
  std::optional<std::string> pins_mismatch();
  Status pin_maps();
  void unpin_maps();
  Status attach(int ifindex, int attach_point, int prog_fd);
  void detach(const Attachment& a);

  struct ::mlink_bpf* skel_ = nullptr;
  struct ::mlink_bpf* probe_skel_ = nullptr;  // for probe(), never attached
  std::string pin_dir_;
  std::vector<std::string> pinned_;
  bool adopted_ = false;        // the maps are a dead agent's
  bool adopted_hooks_ = false;  // the clsact hooks are a dead agent's (ours to remove)
  uint32_t max_peers_ = ML_DEFAULT_PEERS;
  std::vector<Attachment> attached_;
  std::unique_ptr<EchoTable> echo_;  // ml_echo_tx and ml_echo_seen, mapped
};

// Mounts bpffs at path unless one is mounted there already.
Status ensure_bpffs(const std::string& path);

// Sum of a per-CPU array entry.
Result<ml_counter> percpu_sum(int map_fd, uint32_t key);
// One peer's ml_peer_stats, summed over CPUs.
Result<ml_peer_stats> peer_stats_sum(int map_fd, uint32_t peer_id);

}  // namespace mlink::datapath
