// SysctlStore on the real /proc/sys of a fresh netns: a store dropped
// without restoring (an agent killed) and opened again restores the values
// from before the first one, not the ones it finds.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "sys/netns.h"
#include "system/sysctl_store.h"

using namespace mlink;
using namespace mlink::testing;

TEST_CASE("sysctl store: originals survive the store and are restored in the netns") {
  PrivateNetns ns;
  sh("ip link add va type veth peer name vb");
  char tmpl[] = "/tmp/mlsysctl.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string file = std::string(tmpl) + "/n.sysctl.json";
  const std::string rp = "net/ipv4/conf/va/rp_filter", arp = "net/ipv4/conf/all/arp_announce";
  REQUIRE(sysctl_write(rp, "1").ok());
  REQUIRE(sysctl_read(arp).value() == "0");
  {
    auto s = SysctlStore::open(file);
    REQUIRE(s.ok());
    REQUIRE((*s)->set(rp, "2").ok());
    REQUIRE((*s)->set(arp, "2").ok());
  }
  CHECK(sysctl_read(rp).value() == "2");
  {
    auto s = SysctlStore::open(file);
    REQUIRE(s.ok());
    CHECK((*s)->set(rp, "2").value() == "1");
    CHECK((*s)->set(arp, "2").value() == "0");
    CHECK((*s)->restore_all() == 2);
  }
  CHECK(sysctl_read(rp).value() == "1");
  CHECK(sysctl_read(arp).value() == "0");
  CHECK_FALSE(std::filesystem::exists(file));
  std::filesystem::remove_all(tmpl);
}
