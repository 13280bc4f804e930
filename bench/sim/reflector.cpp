#include "reflector.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "ml_sim_drop.skel.h"
#include "mlink.skel.h"
#include "mlink_abi.h"

namespace mlink::sim {
namespace {

constexpr uint32_t kHandle = 1;
constexpr uint32_t kPriority = 10;     // as mlinkd's filters
constexpr uint32_t kDropPriority = 1;  // the fault injection runs first

}  // namespace

Result<std::unique_ptr<Reflector>> Reflector::attach(const std::vector<int>& ifindexes,
                                                     uint32_t pairs) {
  std::unique_ptr<Reflector> r(new Reflector());
  r->skel_ = mlink_bpf__open();
  if (!r->skel_) return os_error("open BPF skeleton", errno);
  r->skel_->rodata->ml_ifindex = 0;  // ml_locals stays empty: nothing is delivered anywhere
  r->skel_->rodata->ml_l2_len = ETH_HLEN;
  if (int err = bpf_map__set_max_entries(r->skel_->maps.ml_bfd_peers, std::max(pairs, 1u)); err)
    return os_error("size ml_bfd_peers", err);
  if (int err = mlink_bpf__load(r->skel_); err) return os_error("load BPF programs", err);
  r->drop_ = ml_sim_drop_bpf__open_and_load();
  if (!r->drop_) return os_error("load sim_drop", errno);
  int fd = bpf_program__fd(r->skel_->progs.ml_ingress);
  int drop_fd = bpf_program__fd(r->drop_->progs.sim_drop);
  for (int ifindex : ifindexes) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) return os_error("clsact on ifindex " + std::to_string(ifindex), err);
    r->attached_.push_back(ifindex);
    for (auto [prog, prio, what] : {std::tuple{fd, kPriority, "ml_ingress"},
                                    std::tuple{drop_fd, kDropPriority, "sim_drop"}}) {
      LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog, .flags = BPF_TC_F_REPLACE, .handle = kHandle,
                  .priority = prio);
      if (err = bpf_tc_attach(&hook, &opts); err)
        return os_error(std::string("attach ") + what + " to ifindex " + std::to_string(ifindex),
                        err);
    }
  }
  return r;
}

Reflector::~Reflector() {
  for (int ifindex : attached_) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    for (uint32_t prio : {kDropPriority, kPriority}) {
      LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kHandle, .priority = prio);
      bpf_tc_detach(&hook, &opts);
    }
  }
  if (drop_) ml_sim_drop_bpf__destroy(drop_);
  if (skel_) mlink_bpf__destroy(skel_);
}

Status Reflector::allow(int ifindex, in_addr local, in_addr remote) {
  ml_bfd_key k{};
  k.ifindex = static_cast<__u32>(ifindex);
  k.family = AF_INET;
  std::memcpy(k.local, &local, sizeof(local));
  std::memcpy(k.remote, &remote, sizeof(remote));
  __u32 zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_bfd_peers), &k, &zero, BPF_ANY) != 0)
    return os_error("add to ml_bfd_peers", errno);
  return {};
}

Status Reflector::silence(in_addr addr, bool on) {
  int fd = bpf_map__fd(drop_->maps.sim_silenced);
  uint32_t key = addr.s_addr;
  uint64_t zero = 0;
  int r = on ? bpf_map_update_elem(fd, &key, &zero, BPF_ANY) : bpf_map_delete_elem(fd, &key);
  if (r != 0 && !(errno == ENOENT && !on)) return os_error("sim_silenced", errno);
  return {};
}

}  // namespace mlink::sim
