// ml-fault - inject link faults for tests and benchmarks (this kernel has no
// netem and no act_gact): a TC program on a device's ingress or egress that
// drops a share of the packets, carrier staying up. 1000000 ppm is a silent
// blackhole, the failure that kernel ECMP never repairs.
//
//   ml-fault attach DEV ingress|egress PPM   attach (or replace) with this loss
//   ml-fault set DEV ingress|egress PPM      change the loss of an attached fault
//   ml-fault detach DEV ingress|egress       remove it
//   ml-fault show DEV ingress|egress         print loss_ppm and packets dropped
//
// The program's map is pinned at /sys/fs/bpf/ml-fault/<netns inode>-<ifindex>-<dir>,
// so `set` reaches the instance `attach` made. Run it inside the device's netns
// (nsenter --net), which must share the mount namespace with bpffs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/core.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "datapath/bpf_datapath.h"
#include "ml_fault.skel.h"

namespace {

constexpr uint32_t kHandle = 0xfa17;
constexpr uint32_t kPriority = 1;  // before mlink's filters (priority 10)

struct FaultCfg {  // mirrors struct ml_fault_cfg in bpf/testing/fault.bpf.c
  uint32_t loss_ppm;
  uint32_t dropped;
};

[[noreturn]] void die(const std::string& msg) {
  fmt::print(stderr, "ml-fault: {}\n", msg);
  std::exit(1);
}

std::string pin_path(int ifindex, const std::string& dir) {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) != 0) die("stat /proc/self/ns/net");
  return fmt::format("/sys/fs/bpf/ml-fault/{}-{}-{}", st.st_ino, ifindex, dir);
}

bpf_tc_hook hook_for(int ifindex, const std::string& dir) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = dir == "ingress" ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  return hook;
}

void write_cfg(int map_fd, uint32_t ppm) {
  uint32_t key = 0;
  FaultCfg cfg{ppm, 0};
  FaultCfg old{};
  if (bpf_map_lookup_elem(map_fd, &key, &old) == 0) cfg.dropped = old.dropped;
  if (bpf_map_update_elem(map_fd, &key, &cfg, BPF_ANY) != 0) die("update fault map");
}

void attach(int ifindex, const std::string& dir, uint32_t ppm) {
  if (auto s = mlink::datapath::ensure_bpffs("/sys/fs/bpf"); !s) die(s.error().message);
  ml_fault_bpf* skel = ml_fault_bpf__open_and_load();
  if (!skel) die("load fault program");
  write_cfg(bpf_map__fd(skel->maps.ml_fault_cfg), ppm);
  bpf_tc_hook hook = hook_for(ifindex, dir);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) die(fmt::format("create clsact: {}", strerror(-err)));
  LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = bpf_program__fd(skel->progs.ml_fault),
              .flags = BPF_TC_F_REPLACE, .handle = kHandle, .priority = kPriority);
  if ((err = bpf_tc_attach(&hook, &tc))) die(fmt::format("attach: {}", strerror(-err)));
  std::string pin = pin_path(ifindex, dir);
  std::filesystem::create_directories(std::filesystem::path(pin).parent_path());
  unlink(pin.c_str());
  if (bpf_map__pin(skel->maps.ml_fault_cfg, pin.c_str())) die("pin " + pin);
  ml_fault_bpf__destroy(skel);  // the filter keeps the program, the pin keeps the map
}

int open_pinned(int ifindex, const std::string& dir) {
  int fd = bpf_obj_get(pin_path(ifindex, dir).c_str());
  if (fd < 0) die("no fault attached on that device and direction");
  return fd;
}

void detach(int ifindex, const std::string& dir) {
  bpf_tc_hook hook = hook_for(ifindex, dir);
  LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kHandle, .priority = kPriority);
  int err = bpf_tc_detach(&hook, &tc);
  unlink(pin_path(ifindex, dir).c_str());
  if (err) die(fmt::format("detach: {}", strerror(-err)));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ml-fault: drop a share of a device's packets (tests and benchmarks)"};
  app.require_subcommand(1);
  std::string dev, dir;
  uint32_t ppm = 0;
  auto add = [&](const char* name, const char* help, bool with_ppm) {
    auto* c = app.add_subcommand(name, help);
    c->add_option("device", dev)->required();
    c->add_option("direction", dir)->required()->check(CLI::IsMember({"ingress", "egress"}));
    if (with_ppm)
      c->add_option("ppm", ppm, "loss in parts per million")
          ->required()
          ->check(CLI::Range(0u, 1000000u));
    return c;
  };
  auto* c_attach = add("attach", "attach with a loss rate", true);
  auto* c_set = add("set", "change the loss rate", true);
  auto* c_detach = add("detach", "remove the fault", false);
  add("show", "print the loss rate and drops", false);
  CLI11_PARSE(app, argc, argv);

  libbpf_set_print(nullptr);  // failures are reported by die(); libbpf's notes are noise here
  int ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
  if (!ifindex) die("no device " + dev);
  if (c_attach->parsed()) {
    attach(ifindex, dir, ppm);
  } else if (c_set->parsed()) {
    write_cfg(open_pinned(ifindex, dir), ppm);
  } else if (c_detach->parsed()) {
    detach(ifindex, dir);
  } else {
    uint32_t key = 0;
    FaultCfg cfg{};
    if (bpf_map_lookup_elem(open_pinned(ifindex, dir), &key, &cfg) != 0) die("read fault map");
    fmt::print("loss_ppm {} dropped {}\n", cfg.loss_ppm, cfg.dropped);
  }
  return 0;
}
