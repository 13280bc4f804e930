#include "datapath/bpf_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "datapath/echo_table.h"
#include "mlink.skel.h"

namespace mlink::datapath {
namespace {

// Our filters' identity on every clsact hook we use.
constexpr uint32_t kTcHandle = 0x4d4c;  // "ML"
constexpr uint32_t kTcPriority = 10;    // leaves room before us (e.g. fault injection in tests)

Status mkdirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{"create " + dir + ": " + ec.message(), ec.value()};
  return {};
}

}  // namespace

Status ensure_bpffs(const std::string& path) {
  struct statfs st {};
  if (statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC) return {};
  if (auto s = mkdirs(path); !s) return s;
  if (mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0)
    return os_error("mount bpffs on " + path, errno);
  log::info("mounted bpffs on {}", path);
  return {};
}

namespace {

// One entry of a per-CPU map: a value per possible CPU. `what` names the
// entry in an error ("<what> <key>"), built only when there is one: the agent
// reads every peer's counters ten times a second.
template <typename T>
Result<std::vector<T>> percpu_lookup(int map_fd, uint32_t key, const char* what) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return os_error("count possible CPUs", ncpu);
  std::vector<T> per_cpu(static_cast<size_t>(ncpu));
  if (bpf_map_lookup_elem(map_fd, &key, per_cpu.data()) != 0)
    return os_error(std::string("read ") + what + " " + std::to_string(key), errno);
  return per_cpu;
}

}  // namespace

Result<ml_counter> percpu_sum(int map_fd, uint32_t key) {
  auto per_cpu = percpu_lookup<ml_counter>(map_fd, key, "per-CPU counter");
  if (!per_cpu) return per_cpu.error();
  ml_counter sum{};
  for (const auto& c : *per_cpu) sum.packets += c.packets, sum.bytes += c.bytes;
  return sum;
}

Result<ml_peer_stats> peer_stats_sum(int map_fd, uint32_t peer_id) {
  auto per_cpu = percpu_lookup<ml_peer_stats>(map_fd, peer_id, "counters of peer");
  if (!per_cpu) return per_cpu.error();
  ml_peer_stats sum{};
  for (const auto& c : *per_cpu) {
    for (size_t s = 0; s < ML_MAX_SLOTS; s++) {
      sum.slots[s].packets += c.slots[s].packets;
      sum.slots[s].bytes += c.slots[s].bytes;
    }
    for (size_t b = 0; b < ML_BUCKETS; b++) sum.bucket_packets[b] += c.bucket_packets[b];
  }
  return sum;
}

Result<MapShape> map_shape(int map_fd) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(map_fd, &info, &len); err)
    return os_error("read map info", err);
  return MapShape{info.type, info.key_size, info.value_size, info.max_entries};
}

Result<uint32_t> abi_version(int ml_abi_fd) {
  __u32 key = 0, version = 0;
  if (bpf_map_lookup_elem(ml_abi_fd, &key, &version) != 0) return os_error("read ml_abi", errno);
  return version;
}

Result<std::unique_ptr<BpfDatapath>> BpfDatapath::load(const LoadOptions& opts) {
  if (opts.max_peers == 0 || opts.max_peers > ML_PEERS_LIMIT)
    return Error{"max_peers must be 1.." + std::to_string(ML_PEERS_LIMIT) + ", got " +
                 std::to_string(opts.max_peers)};
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath());
  dp->skel_ = mlink_bpf__open();
  if (!dp->skel_) return os_error("open BPF skeleton", errno);
  dp->skel_->rodata->ml_ifindex = static_cast<__u32>(opts.ml_ifindex);
  dp->skel_->rodata->ml_l2_len = 0;  // the ML device is a tun: IP header first
  dp->max_peers_ = opts.max_peers;
  if (int err = bpf_map__set_max_entries(dp->skel_->maps.ml_peers, 2 * opts.max_peers); err)
    return os_error("size ml_peers", err);
  if (int err = bpf_map__set_max_entries(dp->skel_->maps.ml_peer_stats, opts.max_peers); err)
    return os_error("size ml_peer_stats", err);
  if (int err =
          bpf_map__set_max_entries(dp->skel_->maps.ml_bfd_peers, opts.max_peers * ML_MAX_SLOTS);
      err)
    return os_error("size ml_bfd_peers", err);
  if (int err =
          bpf_map__set_max_entries(dp->skel_->maps.ml_echo_seen, opts.max_peers * ML_MAX_SLOTS);
      err)
    return os_error("size ml_echo_seen", err);
  dp->pin_dir_ = opts.pin_dir;
  dp->adopted_hooks_ = opts.adopt;
  if (opts.adopt)
    if (auto s = dp->reuse_pins(); !s) return s.error();
  if (int err = mlink_bpf__load(dp->skel_); err)
    return os_error("load BPF programs (see libbpf log above)", err);
  __u32 key = 0, version = ML_ABI_VERSION;
  if (bpf_map_update_elem(bpf_map__fd(dp->skel_->maps.ml_abi), &key, &version, BPF_ANY) != 0)
    return os_error("write ml_abi", errno);
  if (auto s = dp->pin_maps(); !s) return s.error();
  auto echo = MappedEchoTable::map(bpf_map__fd(dp->skel_->maps.ml_echo_tx),
                                   bpf_map__fd(dp->skel_->maps.ml_echo_seen),
                                   opts.max_peers * ML_MAX_SLOTS);
  if (!echo) return echo.error();
  dp->echo_ = std::move(*echo);
  // Allocated in full at load: ml_peers 2 entries per peer (value, key and
  // ~68 B of the kernel's: 736 B an entry, measured), ml_peer_stats one
  // value per peer per CPU.
  int ncpu = std::max(libbpf_num_possible_cpus(), 1);
  double per_peer =
      2.0 * (sizeof(ml_peer) + sizeof(ml_addr) + 68) + double(sizeof(ml_peer_stats)) * ncpu;
  log::info("datapath maps sized for {} peers: ~{:.1f} MiB ({:.1f} KiB per peer, {} CPUs)",
            opts.max_peers, per_peer * opts.max_peers / (1 << 20), per_peer / 1024, ncpu);
  return dp;
}

BpfDatapath::~BpfDatapath() {
  for (auto it = attached_.rbegin(); it != attached_.rend(); ++it) detach(*it);
  unpin_maps();
  if (probe_skel_) mlink_bpf__destroy(probe_skel_);
  mlink_bpf__destroy(skel_);
}

namespace {

std::vector<bpf_map*> pinned_maps(mlink_bpf* skel) {
  return {skel->maps.ml_peers,     skel->maps.ml_locals,        skel->maps.ml_peer_stats,
          skel->maps.ml_drops,     skel->maps.ml_ingress_stats, skel->maps.ml_abi,
          skel->maps.ml_bfd_peers, skel->maps.ml_flowlets,      skel->maps.ml_echo_tx,
          skel->maps.ml_echo_seen, skel->maps.ml_link_addrs};
}

}  // namespace

// Why the maps pinned in pin_dir_ cannot serve this agent, or nullopt when
// every one has the version and shape this build and these options define.
// (bpf_map__reuse_fd takes over whatever definition the pinned map has, so
// without this check maps of another layout would be reused: the verifier
// would refuse the programs, or accept them on values of the wrong size.)
std::optional<std::string> BpfDatapath::pins_mismatch() {
  std::string abi_path = pin_dir_ + "/ml_abi";
  int abi_fd = bpf_obj_get(abi_path.c_str());
  if (abi_fd < 0) return "no ml_abi pin (ABI version 1, or older)";
  auto version = abi_version(abi_fd);
  close(abi_fd);
  if (!version) return version.error().message;
  if (*version != ML_ABI_VERSION)
    return "ABI version " + std::to_string(*version) + ", this mlinkd's is " +
           std::to_string(ML_ABI_VERSION);
  for (bpf_map* m : pinned_maps(skel_)) {
    std::string name = bpf_map__name(m), path = pin_dir_ + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return "open " + path + ": " + std::strerror(errno);
    auto got = map_shape(fd);
    close(fd);
    if (!got) return name + ": " + got.error().message;
    MapShape want{static_cast<uint32_t>(bpf_map__type(m)), bpf_map__key_size(m),
                  bpf_map__value_size(m), bpf_map__max_entries(m)};
    if (got->type != want.type || got->key_size != want.key_size ||
        got->value_size != want.value_size)
      return name + " has type " + std::to_string(got->type) + ", key " +
             std::to_string(got->key_size) + " B, value " + std::to_string(got->value_size) +
             " B; this mlinkd's has " + std::to_string(want.type) + ", " +
             std::to_string(want.key_size) + " B, " + std::to_string(want.value_size) + " B";
    if (got->max_entries != want.max_entries)
      return name + " holds " + std::to_string(got->max_entries) +
             " entries, node.max_peers = " + std::to_string(max_peers_) + " needs " +
             std::to_string(want.max_entries);
  }
  return std::nullopt;
}

// Adopts the pinned maps when they are of this ABI and size. Otherwise the
// datapath cannot be kept (a map cannot be resized or converted in place):
// it is replaced by a fresh one (programs replaced in place, pins replaced),
// whose entries the agent relearns, instead of refusing to start and leaving
// the dead agent's datapath forwarding on stale entries with no agent.
Status BpfDatapath::reuse_pins() {
  if (auto why = pins_mismatch()) {
    log::warn(
        "not adopting the datapath pinned in {}: {}; loading a fresh one (peer entries "
        "and counters start empty and are relearned)",
        pin_dir_, *why);
    return {};
  }
  for (bpf_map* m : pinned_maps(skel_)) {
    std::string path = pin_dir_ + "/" + bpf_map__name(m);
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) return os_error("adopt " + path, errno);
    int err = bpf_map__reuse_fd(m, fd);
    close(fd);  // reuse_fd keeps its own duplicate
    if (err) return os_error("adopt " + path, err);
  }
  adopted_ = true;
  return {};
}

Status BpfDatapath::pin_maps() {
  if (pin_dir_.empty()) return {};
  if (adopted_) {  // already pinned, and they are these maps
    for (bpf_map* m : pinned_maps(skel_)) pinned_.push_back(pin_dir_ + "/" + bpf_map__name(m));
    return {};
  }
  if (auto s = mkdirs(pin_dir_); !s) return s;
  for (bpf_map* m : pinned_maps(skel_)) {
    std::string path = pin_dir_ + "/" + bpf_map__name(m);
    if (access(path.c_str(), F_OK) == 0) {
      log::warn("removing stale pin {} (left by an agent that did not exit cleanly)", path);
      unlink(path.c_str());
    }
    if (int err = bpf_map__pin(m, path.c_str()); err) return os_error("pin " + path, err);
    pinned_.push_back(path);
  }
  return {};
}

void BpfDatapath::unpin_maps() {
  for (const auto& p : pinned_) unlink(p.c_str());
  pinned_.clear();
  if (pin_dir_.empty()) return;
  rmdir(pin_dir_.c_str());  // fails harmlessly if something else lives there
  rmdir(std::filesystem::path(pin_dir_).parent_path().c_str());
}

Status BpfDatapath::attach(int ifindex, int attach_point, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(attach_point));
  // An adopted hook exists already (creating it again only makes the kernel
  // complain about exclusivity).
  int err = adopted_hooks_ ? -EEXIST : bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST)
    return os_error("create clsact on ifindex " + std::to_string(ifindex), err);
  // An adopted hook was created by the agent before us: ours to remove too.
  Attachment a{ifindex, attach_point, err == 0 || adopted_hooks_};
  LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = kTcPriority);
  if (int e = bpf_tc_attach(&hook, &tc); e) {
    if (a.created_hook) bpf_tc_hook_destroy(&hook);
    return os_error("attach TC program on ifindex " + std::to_string(ifindex), e);
  }
  attached_.push_back(a);
  return {};
}

void BpfDatapath::detach(const Attachment& a) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a.ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(a.attach_point));
  LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kTcHandle, .priority = kTcPriority);
  int err = bpf_tc_detach(&hook, &tc);
  if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
    log::warn("detach TC program from ifindex {}: {}", a.ifindex, strerror(-err));
  if (a.created_hook) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    bpf_tc_hook_destroy(&hook);
  }
}

Status BpfDatapath::attach_egress(int ifindex) {
  return attach(ifindex, BPF_TC_EGRESS, bpf_program__fd(skel_->progs.ml_egress));
}

Status BpfDatapath::attach_ingress(int ifindex) {
  return attach(ifindex, BPF_TC_INGRESS, bpf_program__fd(skel_->progs.ml_ingress));
}

Result<bool> BpfDatapath::adopt_ingress(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kTcHandle, .priority = kTcPriority);
  if (bpf_tc_query(&hook, &tc) != 0) return false;  // no hook, or no filter of ours on it
  if (auto s = attach_ingress(ifindex); !s) return s.error();
  return true;
}

void BpfDatapath::detach_ingress(int ifindex) {
  auto it = std::find_if(attached_.begin(), attached_.end(), [&](const Attachment& a) {
    return a.ifindex == ifindex && a.attach_point == BPF_TC_INGRESS;
  });
  if (it == attached_.end()) return;
  detach(*it);
  attached_.erase(it);
}

int BpfDatapath::bfd_socket_filter_fd() const {
  return bpf_program__fd(skel_->progs.ml_sock_bfd);
}

int BpfDatapath::topo_socket_filter_fd() const {
  return bpf_program__fd(skel_->progs.ml_sock_topo);
}

Status BpfDatapath::set_bfd_peer(const ml_bfd_key& key, bool present, uint32_t slot) {
  int fd = bpf_map__fd(skel_->maps.ml_bfd_peers);
  __u32 value = slot;
  if (present ? bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0
              : bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
    return os_error(present ? "add to ml_bfd_peers" : "remove from ml_bfd_peers", errno);
  return {};
}

Status BpfDatapath::set_link_addr(int ifindex, const IpAddr& local, bool present) {
  int fd = bpf_map__fd(skel_->maps.ml_link_addrs);
  ml_link_key key{};
  key.ifindex = static_cast<__u32>(ifindex);
  key.family = static_cast<__u8>(local.family);
  ml_addr value = to_key(local);
  if (present ? bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0
              : bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT)
    return os_error(present ? "add to ml_link_addrs" : "remove from ml_link_addrs", errno);
  return {};
}

Result<std::vector<ml_bfd_key>> BpfDatapath::bfd_peers() {
  int fd = bpf_map__fd(skel_->maps.ml_bfd_peers);
  std::vector<ml_bfd_key> out;
  ml_bfd_key k{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    out.push_back(next);
    k = next;
    prev = &k;
  }
  if (errno != ENOENT) return os_error("read ml_bfd_peers", errno);
  return out;
}

int BpfDatapath::egress_prog_fd() const {
  return bpf_program__fd(skel_->progs.ml_egress);
}

Result<BpfDatapath::Probe> BpfDatapath::probe(const std::vector<uint8_t>& frame) {
  if (!probe_skel_) {
    mlink_bpf* p = mlink_bpf__open();
    if (!p) return os_error("open BPF skeleton (probe)", errno);
    p->rodata->ml_ifindex = skel_->rodata->ml_ifindex;
    p->rodata->ml_l2_len = ETH_HLEN;
    auto mine = pinned_maps(p), live = pinned_maps(skel_);  // every map, in the same order
    for (size_t i = 0; i < mine.size(); i++) {
      if (int err = bpf_map__reuse_fd(mine[i], bpf_map__fd(live[i])); err) {
        mlink_bpf__destroy(p);
        return os_error("probe: share the live maps", err);
      }
    }
    if (int err = mlink_bpf__load(p); err) {
      mlink_bpf__destroy(p);
      return os_error("load BPF programs (probe)", err);
    }
    probe_skel_ = p;
  }
  std::vector<uint8_t> out(frame.size() + 256);
  __sk_buff ctx_in{}, ctx_out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size()),
              .data_size_out = static_cast<__u32>(out.size()), .ctx_in = &ctx_in,
              .ctx_out = &ctx_out, .ctx_size_in = sizeof(ctx_in), .ctx_size_out = sizeof(ctx_out),
              .repeat = 1);
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(probe_skel_->progs.ml_egress), &opts); err)
    return os_error("BPF_PROG_TEST_RUN of ml_egress", err);
  Probe r;
  r.verdict = opts.retval;
  static_assert(sizeof(r.decision) <= sizeof(ctx_out.cb));
  std::memcpy(&r.decision, ctx_out.cb, sizeof(r.decision));
  return r;
}

Status BpfDatapath::set_peer(const IpAddr& addr, const ml_peer& value) {
  ml_addr key = to_key(addr);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_peers), &key, &value, BPF_ANY) != 0)
    return os_error("write peer " + addr.str(), errno);
  return {};
}

Status BpfDatapath::del_peer(const IpAddr& addr) {
  ml_addr key = to_key(addr);
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.ml_peers), &key) != 0 && errno != ENOENT)
    return os_error("delete peer " + addr.str(), errno);
  return {};
}

Result<std::vector<IpAddr>> BpfDatapath::peer_addresses() {
  std::vector<IpAddr> out;
  int fd = bpf_map__fd(skel_->maps.ml_peers);
  ml_addr key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    out.push_back(from_key(next));
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) return os_error("list peers", errno);
  return out;
}

Result<ml_peer> BpfDatapath::get_peer(const IpAddr& addr) {
  ml_addr key = to_key(addr);
  ml_peer v{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ml_peers), &key, &v) != 0)
    return os_error("read peer " + addr.str(), errno);
  return v;
}

Status BpfDatapath::add_local(const IpAddr& addr) {
  ml_addr key = to_key(addr);
  __u32 one = 1;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_locals), &key, &one, BPF_ANY) != 0)
    return os_error("write local address " + addr.str(), errno);
  return {};
}

Result<ml_peer_stats> BpfDatapath::peer_stats(uint32_t peer_id) {
  return peer_stats_sum(bpf_map__fd(skel_->maps.ml_peer_stats), peer_id);
}

namespace {

// Every entry of a per-CPU counter array, summed over CPUs.
template <size_t N>
Result<std::array<ml_counter, N>> percpu_all(int fd) {
  std::array<ml_counter, N> out{};
  for (uint32_t i = 0; i < N; i++) {
    auto c = percpu_sum(fd, i);
    if (!c) return c.error();
    out[i] = *c;
  }
  return out;
}

}  // namespace

Result<std::array<ml_counter, ML_DROP_MAX>> BpfDatapath::drops() {
  return percpu_all<ML_DROP_MAX>(bpf_map__fd(skel_->maps.ml_drops));
}

Result<std::array<ml_counter, ML_IN_MAX>> BpfDatapath::ingress_stats() {
  return percpu_all<ML_IN_MAX>(bpf_map__fd(skel_->maps.ml_ingress_stats));
}

}  // namespace mlink::datapath
