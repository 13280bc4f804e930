// SysctlStore against a temp dir standing in for /proc/sys: the originals
// outlive the store object (as they outlive a SIGKILLed agent) and only a
// restore gives them back.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "system/sysctl_store.h"

using namespace mlink;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path root;
  TempDir() {
    char tmpl[] = "/tmp/mlsysctl.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    root = tmpl;
    fs::create_directories(root / "proc/net/ipv4/conf/all");
    fs::create_directories(root / "proc/net/ipv4/conf/eth0");
    put("net/ipv4/conf/all/arp_announce", "0\n");
    put("net/ipv4/conf/eth0/arp_announce", "1\n");
    put("net/ipv4/conf/eth0/rp_filter", "1\n");
  }
  ~TempDir() { fs::remove_all(root); }
  std::string proc() const { return (root / "proc").string(); }
  std::string file() const { return (root / "a.sysctl.json").string(); }
  void put(const std::string& path, const std::string& v) const {
    std::ofstream(root / "proc" / path) << v;
  }
  std::string get(const std::string& path) const { return sysctl_read(path, proc()).value(); }
  std::string state() const {
    std::ifstream in(file());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

std::unique_ptr<SysctlStore> open_store(const TempDir& t) {
  auto s = SysctlStore::open(t.file(), t.proc());
  REQUIRE_MESSAGE(s.ok(), s.error().message);
  return std::move(*s);
}

}  // namespace

TEST_CASE("sysctl store: the original is in the file while the sysctl is changed") {
  TempDir t;
  auto s = open_store(t);
  CHECK_FALSE(fs::exists(t.file()));
  auto old = s->set("net/ipv4/conf/all/arp_announce", "2");
  REQUIRE(old.ok());
  CHECK(*old == "0");
  CHECK(t.get("net/ipv4/conf/all/arp_announce") == "2");
  CHECK(t.state().find(R"("net/ipv4/conf/all/arp_announce":"0")") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file() + ".tmp"));
  s->restore("net/ipv4/conf/all/arp_announce");
  CHECK(t.get("net/ipv4/conf/all/arp_announce") == "0");
  CHECK_FALSE(fs::exists(t.file()));  // nothing left to restore: no file
}

TEST_CASE("sysctl store: a restarted agent keeps the first agent's originals") {
  TempDir t;
  {
    auto s = open_store(t);
    REQUIRE(s->set("net/ipv4/conf/all/arp_announce", "2").ok());
    REQUIRE(s->set("net/ipv4/conf/eth0/rp_filter", "2").ok());
  }  // SIGKILL: nothing restored
  CHECK(t.get("net/ipv4/conf/eth0/rp_filter") == "2");
  auto s = open_store(t);
  CHECK(s->originals().size() == 2);
  auto old = s->set("net/ipv4/conf/eth0/rp_filter", "2");
  REQUIRE(old.ok());
  CHECK(*old == "1");  // not the 2 it reads now
  {
    // A guard with the store restores the store's original and makes it forget.
    auto g = SysctlGuard::set("net/ipv4/conf/all/arp_announce", "2", s.get());
    REQUIRE(g.ok());
    CHECK(g->old_value() == "0");
  }
  CHECK(t.get("net/ipv4/conf/all/arp_announce") == "0");
  CHECK(s->originals().size() == 1);
  CHECK(fs::exists(t.file()));
  CHECK(s->restore_all() == 1);
  CHECK(t.get("net/ipv4/conf/eth0/rp_filter") == "1");
  CHECK_FALSE(fs::exists(t.file()));
}

TEST_CASE("sysctl store: what a restarted agent no longer sets is restored at once") {
  TempDir t;
  {
    auto s = open_store(t);
    REQUIRE(s->set("net/ipv4/conf/eth0/arp_announce", "2").ok());
    REQUIRE(s->set("net/ipv4/conf/eth0/rp_filter", "2").ok());  // rx_mode loose, then not
  }
  auto s = open_store(t);
  REQUIRE(s->set("net/ipv4/conf/eth0/arp_announce", "2").ok());
  CHECK(s->restore_unclaimed() == 1);
  CHECK(t.get("net/ipv4/conf/eth0/rp_filter") == "1");
  CHECK(t.get("net/ipv4/conf/eth0/arp_announce") == "2");
  CHECK(s->originals().count("net/ipv4/conf/eth0/rp_filter") == 0);
  CHECK(open_store(t)->originals().size() == 1);  // and the file says so
}

TEST_CASE("sysctl store: failures leave no original behind, a gone sysctl is forgotten") {
  TempDir t;
  auto s = open_store(t);
  CHECK_FALSE(s->set("net/ipv4/conf/nosuchdev/arp_announce", "2").ok());
  CHECK(s->originals().empty());
  CHECK_FALSE(fs::exists(t.file()));
  REQUIRE(s->set("net/ipv4/conf/eth0/arp_announce", "2").ok());
  fs::remove_all(t.root / "proc/net/ipv4/conf/eth0");  // the link was deleted
  s->restore("net/ipv4/conf/eth0/arp_announce");
  CHECK(s->originals().empty());
  CHECK_FALSE(fs::exists(t.file()));
}

TEST_CASE("sysctl store: a file that does not parse is an error, not an empty store") {
  TempDir t;
  std::ofstream(t.file()) << "{\"originals\": {\"net/ipv4/conf/all/arp_ann";
  auto s = SysctlStore::open(t.file(), t.proc());
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find(t.file()) != std::string::npos);
}
