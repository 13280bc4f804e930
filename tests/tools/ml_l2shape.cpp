// ml-l2shape - make a link's ingress look like an InfiniBand (IPoIB) link's to mlink: a TC
// program before mlink's (bpf/testing/l2shape.bpf.c) gives every IP packet IPoIB's 24-byte L2
// header in place of the Ethernet one, so ml_ingress runs on the shape it would meet there.
// This kernel and machine have no InfiniBand device.
//
//   ml-l2shape attach DEV   attach (or replace) on DEV's ingress
//   ml-l2shape detach DEV   remove it
//
// Run it inside the device's netns (nsenter --net).
#include <bpf/libbpf.h>
#include <fmt/core.h>
#include <net/if.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "ml_l2shape.skel.h"

namespace {

constexpr uint32_t kHandle = 0x1b24;
constexpr uint32_t kPriority = 2;  // after ml-fault (1), before mlink's filters (10)

[[noreturn]] void die(const std::string& msg) {
  fmt::print(stderr, "ml-l2shape: {}\n", msg);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ml-l2shape: give a link's ingress IPoIB's L2 header (tests)"};
  app.require_subcommand(1);
  std::string dev;
  auto* c_attach = app.add_subcommand("attach", "attach on the device's ingress");
  auto* c_detach = app.add_subcommand("detach", "remove it");
  for (auto* c : {c_attach, c_detach}) c->add_option("device", dev)->required();
  CLI11_PARSE(app, argc, argv);

  libbpf_set_print(nullptr);  // failures are reported by die()
  int ifindex = static_cast<int>(if_nametoindex(dev.c_str()));
  if (!ifindex) die("no device " + dev);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  if (c_detach->parsed()) {
    LIBBPF_OPTS(bpf_tc_opts, tc, .handle = kHandle, .priority = kPriority);
    if (int err = bpf_tc_detach(&hook, &tc)) die(fmt::format("detach: {}", strerror(-err)));
    return 0;
  }
  ml_l2shape_bpf* skel = ml_l2shape_bpf::open_and_load();
  if (!skel) die("load the shape program");
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) die(fmt::format("create clsact: {}", strerror(-err)));
  LIBBPF_OPTS(bpf_tc_opts, tc, .prog_fd = bpf_program__fd(skel->progs.ml_l2shape),
              .flags = BPF_TC_F_REPLACE, .handle = kHandle, .priority = kPriority);
  if ((err = bpf_tc_attach(&hook, &tc))) die(fmt::format("attach: {}", strerror(-err)));
  ml_l2shape_bpf::destroy(skel);  // the filter keeps the program (its tail-call slot stays empty)
  return 0;
}
