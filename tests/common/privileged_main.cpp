// Entry point of the privileged test binaries (sys_tests, bpf_tests).
//
// They need root (netlink in a private netns, BPF). When that is missing they
// print why and exit 77, which ctest reports as skipped; with
// MLINK_REQUIRE_PRIVILEGED=1 (CI) a missing privilege is a failure, so CI
// cannot go green on a machine where these tests silently did not run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string missing_privilege() {
  if (geteuid() != 0) return "not running as root";
  union bpf_attr attr = {};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 1;
  long fd = syscall(__NR_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
  if (fd < 0) return std::string("bpf() map create failed: ") + std::strerror(errno);
  close(static_cast<int>(fd));
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  if (auto why = missing_privilege(); !why.empty()) {
    const char* req = std::getenv("MLINK_REQUIRE_PRIVILEGED");
    bool required = req && std::string(req) == "1";
    std::fprintf(stderr, "%s: %s: %s\n", argv[0], required ? "FAIL" : "SKIP", why.c_str());
    return required ? 1 : 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
