// Many BFD sessions over one link, two Liveness instances in two namespaces:
// every packet must reach its own session (packets are matched by an index
// of (socket, peer address) and timers are kept in a deadline-ordered set),
// and ending one session on one side takes exactly that one down on the other, and
// closes the sockets nothing else uses.
#include <doctest/doctest.h>
#include <systemd/sd-event.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "agent/liveness.h"
#include "sys/netns.h"

using namespace mlink;
using namespace mlink::testing;

namespace {

constexpr int kSessions = 48;

std::string far_addr(int i) {
  return "10.77.0." + std::to_string(2 + i);
}

using Loop = EventLoop;

struct StateDir {  // where the near side keeps its sessions, removed at the end
  std::string path;
  StateDir() {
    char tmpl[] = "/tmp/mlink-bfdstate-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~StateDir() { std::filesystem::remove_all(path); }
};

struct Side {
  std::unique_ptr<agent::Liveness> l;
  std::vector<agent::Liveness::Id> ids;  // by far address index
  std::map<agent::Liveness::Id, std::vector<bfd::Transition>> changes;

  explicit Side(std::string state_path = {}) {
    agent::Liveness::Options o;
    o.cfg.echo = false;  // no datapath here to reflect them
    o.state_path = std::move(state_path);
    l = agent::Liveness::create(
        o, [this](agent::Liveness::Id id, const bfd::Transition& t) { changes[id].push_back(t); });
  }
  size_t up() const {
    size_t n = 0;
    for (auto id : ids) n += l->up(id);
    return n;
  }
};

}  // namespace

TEST_CASE("BFD: 48 sessions over one link, each packet to its own session") {
  PrivateNetns a;
  PeerNetns b;
  sh("ip link add bl0 type veth peer name bl0 netns " + b.name());
  sh("ip link set lo up");
  sh("ip addr add 10.77.0.1/24 dev bl0");
  sh("ip link set bl0 up");
  for (int i = 0; i < kSessions; i++) b.run("addr add " + far_addr(i) + "/24 dev bl0");
  b.run("link set bl0 up");
  sh("ip netns exec " + b.name() + " ping -c 1 -W 5 10.77.0.1");

  Loop loop;
  StateDir dir;
  const std::string state = dir.path + "/bfd.json";
  Side near(state), far;
  for (int i = 0; i < kSessions; i++) {
    auto id = near.l->add({"bl0", *IpAddr::parse("10.77.0.1"), *IpAddr::parse(far_addr(i)),
                           "far " + std::to_string(i)});
    REQUIRE_MESSAGE(id.ok(), id.error().message);
    near.ids.push_back(*id);
    auto fid = in_netns(b.name(), [&] {
      return far.l->add({"bl0", *IpAddr::parse(far_addr(i)), *IpAddr::parse("10.77.0.1"),
                         "near from " + std::to_string(i)});
    });
    REQUIRE_MESSAGE(fid.ok(), fid.error().message);
    far.ids.push_back(*fid);
  }
  REQUIRE(near.l->attach(loop.e).ok());
  REQUIRE(far.l->attach(loop.e).ok());

  // Down -> Init -> Up at 1 s control packets while not Up (RFC 5880 §6.8.3).
  REQUIRE(loop.run_until([&] { return near.up() == kSessions && far.up() == kSessions; },
                         milliseconds(8000)));
  CHECK(near.l->rx_unmatched() == 0);
  CHECK(far.l->rx_unmatched() == 0);
  for (auto& [id, c] : near.changes) c.clear();

  // The state a restarted agent resumes from, as load_state() reads it: written
  // kSaveDelayUsec after the last session came Up.
  auto saved = [&] {
    std::ifstream in(state);
    auto j = nlohmann::json::parse(in, nullptr, false);
    return j.is_object() ? j : nlohmann::json::object();
  };
  REQUIRE(loop.run_until(
      [&] { return saved().value("sessions", nlohmann::json::array()).size() == kSessions; },
      milliseconds(2000)));
  {
    auto j = saved();
    std::set<std::string> remotes;
    for (const auto& s : j.at("sessions")) {
      CHECK(s.at("device") == "bl0");
      CHECK(s.at("local") == "10.77.0.1");
      CHECK(s.at("resume") == true);
      CHECK(s.at("my_disc").get<uint32_t>() != 0);
      CHECK(s.at("remote_disc").get<uint32_t>() != 0);
      CHECK(s.at("remote_detect_mult").get<unsigned>() == 3);
      CHECK(s.at("remote_min_rx_us").get<uint32_t>() > 0);
      remotes.insert(s.at("remote").get<std::string>());
    }
    CHECK(remotes.size() == kSessions);
  }

  // The far end ends session 7 (AdminDown): exactly the near session to that
  // address goes down, the 47 others stay Up for many detection times (90 ms).
  // Its local address served that session alone, so its sockets (control rx and tx, echo)
  // close with it: a deleted link's sockets must not stay open until the agent stops.
  const auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator{});
  };
  const auto fds_before = open_fds();
  far.l->remove(far.ids[7]);
  CHECK(open_fds() == fds_before - 3);
  REQUIRE(loop.run_until([&] { return !near.l->up(near.ids[7]); }, milliseconds(2000)));
  loop.run_for(milliseconds(300));
  CHECK(near.up() == kSessions - 1);
  for (int i = 0; i < kSessions; i++) {
    INFO("session " << i);
    const auto& c = near.changes[near.ids[i]];
    if (i == 7) {
      REQUIRE(c.size() == 1);
      CHECK(c[0].from == bfd::State::Up);
      CHECK(c[0].to == bfd::State::Down);
      CHECK(c[0].diag == bfd::Diag::NeighborDown);
    } else {
      CHECK(c.empty());
    }
  }

  // Added again over the same address: new sockets (in the released slot), Up again.
  auto again = in_netns(b.name(), [&] {
    return far.l->add(
        {"bl0", *IpAddr::parse(far_addr(7)), *IpAddr::parse("10.77.0.1"), "near from 7, again"});
  });
  REQUIRE_MESSAGE(again.ok(), again.error().message);
  CHECK(open_fds() == fds_before);
  REQUIRE(loop.run_until([&] { return near.l->up(near.ids[7]) && far.l->up(*again); },
                         milliseconds(8000)));
  CHECK(near.up() == kSessions);
}
