// The datapath's maps are sized at load from node.max_peers, and an agent
// adopts a dead agent's datapath only when its ABI version and every map's
// shape match; otherwise it loads a fresh one (control/datapath/bpf_datapath.*).
#include <bpf/bpf.h>
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "datapath/bpf_datapath.h"

using namespace mlink;
using mlink::datapath::BpfDatapath;

namespace {

const char* const kMaps[] = {"ml_peers",         "ml_locals",    "ml_peer_stats", "ml_drops",
                             "ml_ingress_stats", "ml_abi",       "ml_bfd_peers",  "ml_flowlets",
                             "ml_echo_tx",       "ml_echo_seen", "ml_link_addrs"};

struct PinRoot {
  std::string root = "/sys/fs/bpf/mlink-test-" + std::to_string(getpid());
  PinRoot() {
    // A fresh machine may have no bpffs yet: mounted as the agent mounts it.
    if (auto s = datapath::ensure_bpffs("/sys/fs/bpf"); !s) FAIL(s.error().message);
    std::filesystem::create_directories(root);
  }
  ~PinRoot() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
};

std::unique_ptr<BpfDatapath> load(const std::string& dir, uint32_t max_peers, bool adopt) {
  auto r = BpfDatapath::load({0, dir, adopt, max_peers});
  if (!r.ok()) FAIL(r.error().message);
  return std::move(r).value();
}

datapath::MapShape shape(const std::string& dir, const char* name) {
  std::string path = dir + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) FAIL("open " << path << ": " << std::strerror(errno));
  auto s = datapath::map_shape(fd);
  close(fd);
  if (!s.ok()) FAIL(s.error().message);
  return *s;
}

ml_peer a_peer(uint32_t id) {
  ml_peer p{};
  p.peer_id = id;
  p.nslots = 1;
  p.slots[0].state = ML_SLOT_UP;
  p.slots[ML_MAX_SLOTS - 1].ifindex = 16;  // the 16th slot exists
  for (auto& b : p.buckets) b = 0;
  return p;
}

// What an agent that died leaves: its maps pinned in dir, one peer entry.
void dead_agent(const PinRoot& pr, const std::string& dir, uint32_t max_peers) {
  std::string live = pr.root + "/live";
  auto dp = load(live, max_peers, false);
  REQUIRE(dp->set_peer(*IpAddr::parse("10.88.0.2"), a_peer(max_peers - 1)).ok());
  std::filesystem::create_directories(dir);
  for (const char* m : kMaps) {
    int fd = bpf_obj_get((live + "/" + m).c_str());
    REQUIRE(fd >= 0);
    REQUIRE(bpf_obj_pin(fd, (dir + "/" + m).c_str()) == 0);
    close(fd);
  }
}  // dp's destructor unpins live/; dir/ keeps the maps, as a SIGKILL would

}  // namespace

TEST_CASE("datapath: max_peers = 4096 sizes ml_peers (x2) and ml_peer_stats") {
  PinRoot pr;
  std::string dir = pr.root + "/a";
  auto dp = load(dir, 4096, false);
  CHECK(dp->max_peers() == 4096);
  CHECK(shape(dir, "ml_peers").max_entries == 8192);
  CHECK(shape(dir, "ml_peers").value_size == sizeof(ml_peer));
  CHECK(sizeof(ml_peer) == 656);
  CHECK(shape(dir, "ml_peer_stats").max_entries == 4096);
  CHECK(shape(dir, "ml_peer_stats").value_size == 2304);
  CHECK(shape(dir, "ml_echo_seen").max_entries == 4096 * ML_MAX_SLOTS);  // one per session
  CHECK(shape(dir, "ml_locals").max_entries == ML_MAX_LOCALS);
  CHECK(shape(dir, "ml_bfd_peers").max_entries == 4096 * ML_MAX_SLOTS);
  CHECK(shape(dir, "ml_abi").max_entries == 1);
  // The last peer id has counters, one more has none; every slot of an entry is written.
  CHECK(dp->peer_stats(4095).ok());
  CHECK_FALSE(dp->peer_stats(4096).ok());
  auto addr = *IpAddr::parse("10.88.0.2");
  REQUIRE(dp->set_peer(addr, a_peer(4095)).ok());
  auto back = dp->get_peer(addr);
  REQUIRE(back.ok());
  CHECK(back->slots[ML_MAX_SLOTS - 1].ifindex == 16);
  // The version the next agent checks.
  int fd = bpf_obj_get((dir + "/ml_abi").c_str());
  REQUIRE(fd >= 0);
  auto v = datapath::abi_version(fd);
  close(fd);
  REQUIRE(v.ok());
  CHECK(*v == ML_ABI_VERSION);
}

TEST_CASE("datapath: the default is 1024 peers, and the limit is enforced") {
  PinRoot pr;
  std::string dir = pr.root + "/a";
  auto dp = load(dir, ML_DEFAULT_PEERS, false);
  CHECK(shape(dir, "ml_peer_stats").max_entries == 1024);
  CHECK(shape(dir, "ml_peers").max_entries == 2048);
  CHECK_FALSE(BpfDatapath::load({0, "", false, 0}).ok());
  CHECK_FALSE(BpfDatapath::load({0, "", false, ML_PEERS_LIMIT + 1}).ok());
}

TEST_CASE("datapath: a dead agent's maps are adopted only with the same ABI and sizes") {
  PinRoot pr;
  std::string dir = pr.root + "/a";
  auto addr = *IpAddr::parse("10.88.0.2");
  SUBCASE("same: adopted, the entry kept") {
    dead_agent(pr, dir, 1024);
    auto dp = load(dir, 1024, true);
    CHECK(dp->adopted());
    auto v = dp->get_peer(addr);
    REQUIRE(v.ok());
    CHECK(v->peer_id == 1023);
  }
  SUBCASE("another max_peers: a fresh datapath of the new size") {
    dead_agent(pr, dir, 1024);
    auto dp = load(dir, 4096, true);
    CHECK_FALSE(dp->adopted());
    CHECK_FALSE(dp->get_peer(addr).ok());
    CHECK(shape(dir, "ml_peer_stats").max_entries == 4096);  // the pins are the new maps
  }
  SUBCASE("another ABI version: a fresh datapath") {
    dead_agent(pr, dir, 1024);
    int fd = bpf_obj_get((dir + "/ml_abi").c_str());
    REQUIRE(fd >= 0);
    __u32 key = 0, old = 1;
    REQUIRE(bpf_map_update_elem(fd, &key, &old, BPF_ANY) == 0);
    close(fd);
    auto dp = load(dir, 1024, true);
    CHECK_FALSE(dp->adopted());
    CHECK_FALSE(dp->get_peer(addr).ok());
  }
  SUBCASE("no ml_abi (ABI 1): a fresh datapath") {
    dead_agent(pr, dir, 1024);
    REQUIRE(unlink((dir + "/ml_abi").c_str()) == 0);
    auto dp = load(dir, 1024, true);
    CHECK_FALSE(dp->adopted());
  }
}
