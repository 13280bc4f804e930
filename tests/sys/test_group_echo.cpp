// Group echo in the agent (control/agent/liveness_group.cpp) on a real link, with the
// datapath's part played by a table in memory: what the agent sends (one echo per link socket
// to the all-nodes group, TTL 255, its (socket, seq, nonce) written to the table first), when a
// reflection makes the session's echo a group echo (its unicast echoes stop), that a session
// whose group echoes stop coming back fails (EchoFailed) within the detection time, that a
// peer that reflects none leaves the session on unicast echoes and stops the group echoes,
// that a lost one starts a burst (bfd/echo_burst.h) when the peer allows its rate, and that a
// session failing in a burst leaves the loop asleep (it once left a sweep due at once: a spin).
//
// B is a peer without a datapath: a socket on 224.0.0.1:3785 sees the group echoes, another on
// its address sees the unicast ones, and its control packets keep the session Up.
#include <doctest/doctest.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <vector>

#include "agent/liveness.h"
#include "proto/bfd/codec.h"
#include "proto/bfd/echo.h"
#include "sys/link_bed.h"

using namespace mlink;
using namespace mlink::testing;
using std::chrono::milliseconds;

namespace {

// ml_echo_tx and ml_echo_seen in memory; record() does what ml_ingress does on a reflection.
struct MemEchoTable final : datapath::EchoTable {
  std::vector<ml_echo_seen> slot_seen = std::vector<ml_echo_seen>(8);
  std::map<uint32_t, std::map<uint32_t, uint64_t>> sent_by_socket;  // socket -> seq -> nonce
  std::vector<uint32_t> stopped;

  uint32_t slots() const override { return static_cast<uint32_t>(slot_seen.size()); }
  ml_echo_seen seen(uint32_t slot) const override { return slot_seen.at(slot); }
  void clear_seen(uint32_t slot) override { slot_seen.at(slot) = {}; }
  void sent(uint32_t socket, uint32_t, uint32_t seq, uint64_t nonce) override {
    sent_by_socket[socket][seq] = nonce;
  }
  void stop(uint32_t socket) override { stopped.push_back(socket); }

  void record(uint32_t slot, uint32_t seq) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ml_echo_seen& s = slot_seen.at(slot);
    uint32_t d = seq - s.seq;
    s.bits = s.count == 0 || d >= 64 ? 1 : (s.bits << d) | 1;
    s.seq = seq;
    s.last_ns = uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
    s.count++;
  }
};

// B's control packet, Up (after our first one) and reflecting echoes at most every echo_rx_us.
bfd::ControlPacket b_packet(bfd::State state, uint32_t your_disc, uint32_t echo_rx_us = 30'000) {
  bfd::ControlPacket p;
  p.state = state;
  p.detect_mult = 3;
  p.my_disc = 0x0c0c0c0c;
  p.your_disc = your_disc;
  p.desired_min_tx_us = 1'000'000;
  p.required_min_rx_us = 1'000'000;
  p.required_min_echo_rx_us = echo_rx_us;
  return p;
}

struct Case {
  Bed bed;
  EventLoop loop;
  MemEchoTable table;
  std::vector<bfd::Transition> transitions;
  std::vector<bool> loss_changes;  // lossy (true) or clean again, as reported
  std::unique_ptr<agent::Liveness> l;
  agent::Liveness::Id id = 0;
  std::unique_ptr<Udp> ctl, group_rx, unicast_rx;

  uint32_t echo_rx;

  explicit Case(uint32_t echo_rx_us = 30'000) : echo_rx(echo_rx_us) {
    agent::Liveness::Options o;
    o.cfg.allow_unauthenticated = true;
    o.echo_table = &table;
    l = agent::Liveness::create(
        o, [&](agent::Liveness::Id, const bfd::Transition& tr) { transitions.push_back(tr); },
        [&](agent::Liveness::Id, bool lossy, unsigned) { loss_changes.push_back(lossy); });
    auto added = l->add({"rj0", *IpAddr::parse(kLocal4), *IpAddr::parse(kPeer4), "b via rj0"});
    REQUIRE_MESSAGE(added.ok(), added.error().message);
    id = *added;
    REQUIRE(l->attach(loop.e).ok());
    ctl = bed.peer_socket(kPeer4, 49998);
    group_rx = bed.peer_socket("224.0.0.1", bfd::kEchoPort);
    unicast_rx = bed.peer_socket(kPeer4, bfd::kEchoPort);
    ctl->send(kLocal4, bfd::kControlPort, bfd::encode(b_packet(bfd::State::Down, 0)));
    REQUIRE(loop.run_until([&] { return l->session(id).state() == bfd::State::Init; }));
    ctl->send(kLocal4, bfd::kControlPort,
              bfd::encode(b_packet(bfd::State::Up, l->session(id).my_disc(), echo_rx_us)));
    REQUIRE(loop.run_until([&] { return l->session(id).state() == bfd::State::Up; }));
  }
  uint32_t slot() const { return l->info(id).echo_slot - 1; }
  // The group echoes B received meanwhile (the all-nodes socket also gets unicast ones: not
  // group echoes, skipped).
  std::vector<bfd::GroupEcho> group_echoes() {
    std::vector<bfd::GroupEcho> out;
    for (const auto& b : group_rx->receive_all())
      if (auto g = bfd::decode_group_echo(b)) out.push_back(*g);
    return out;
  }
  // Runs the loop for t with B's control packets keeping the session Up: the datapath records
  // B's reflection of each group echo that `group` passes (by seq), and B reflects each
  // unicast echo that `unicast` passes (by its number in this call). The group echoes sent
  // meanwhile and the times the unicast ones arrived.
  struct Pumped {
    std::vector<bfd::GroupEcho> group;
    std::vector<std::chrono::steady_clock::time_point> unicast;
  };
  Pumped pump(milliseconds t, const std::function<bool(uint32_t)>& group,
              const std::function<bool(size_t)>& unicast = {}) {
    Pumped out;
    auto next_ctl = std::chrono::steady_clock::now();
    loop.run_until(
        [&] {
          auto now = std::chrono::steady_clock::now();
          if (now >= next_ctl) {
            ctl->send(kLocal4, bfd::kControlPort,
                      bfd::encode(b_packet(bfd::State::Up, l->session(id).my_disc(), echo_rx)));
            next_ctl = now + milliseconds(500);
          }
          for (const auto& g : group_echoes()) {
            if (group(g.seq)) table.record(slot(), g.seq);
            out.group.push_back(g);
          }
          for (const auto& [b, port] : unicast_rx->receive_all_from()) {
            if (unicast && unicast(out.unicast.size())) unicast_rx->send(kLocal4, port, b);
            out.unicast.push_back(now);
          }
          return false;
        },
        t);
    return out;
  }
};

// The median gap (us) between times i and i + 1 for i in [from, from + n).
uint64_t median_gap(const std::vector<uint64_t>& t, size_t from, size_t n) {
  REQUIRE(from + n < t.size());
  std::vector<uint64_t> gaps;
  for (size_t i = from; i < from + n; i++) gaps.push_back(t[i + 1] - t[i]);
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  return gaps[gaps.size() / 2];
}
// Group echoes' send times, as the agent wrote them.
std::vector<uint64_t> sent_us(const std::vector<bfd::GroupEcho>& e) {
  std::vector<uint64_t> t;
  for (const auto& g : e) t.push_back(g.sent_us);
  return t;
}
uint64_t median_gap(const std::vector<bfd::GroupEcho>& e, size_t from, size_t n) {
  return median_gap(sent_us(e), from, n);
}

// B reflects every group echo until the session's echo is the group echo, then for 1.5 s
// (past any burst a slow first reflection started, and the rest after it). The group echoes
// sent in those 1.5 s.
std::vector<bfd::GroupEcho> group_echo_settled(Case& c) {
  REQUIRE(c.loop.run_until(
      [&] {
        for (const auto& g : c.group_echoes()) c.table.record(c.slot(), g.seq);
        return c.l->group_echo(c.id);
      },
      milliseconds(1000)));
  auto settled = c.pump(milliseconds(1500), [](uint32_t) { return true; }).group;
  REQUIRE(!settled.empty());
  return settled;
}

// Then B loses every third one. The echoes sent from the first lost one on.
std::vector<bfd::GroupEcho> lose_every_third(Case& c) {
  uint32_t first_lost = group_echo_settled(c).back().seq + 1;
  auto after =
      c.pump(milliseconds(1500), [&](uint32_t seq) { return (seq - first_lost) % 3 != 0; }).group;
  auto it = std::find_if(after.begin(), after.end(),
                         [&](const bfd::GroupEcho& g) { return g.seq == first_lost; });
  REQUIRE(it != after.end());
  return {it, after.end()};
}

// The echoes of a session that loses every third one from t[0] (us) on, the peer allowing a
// burst's rate: the kLength after the lost one a burst's gap apart (within slack), the loss
// reported once, then plain gaps (no burst for a link already out for loss), still Up.
void check_burst_then_lossy(Case& c, const std::vector<uint64_t>& t, uint64_t slack) {
  using bfd::EchoBurst;
  REQUIRE(t.size() > 1 + EchoBurst::kLength + 16);
  // The echo after the lost one starts the burst (the lost one left at the plain rate).
  CHECK(median_gap(t, 1, EchoBurst::kLength - 1) <= 30'000 / EchoBurst::kDivisor + slack);
  CHECK(c.loss_changes == std::vector<bool>{true});
  CHECK(c.l->lossy(c.id));
  CHECK(median_gap(t, 1 + EchoBurst::kLength, 16) >= 30'000 - slack);
  CHECK(c.l->session(c.id).state() == bfd::State::Up);
}

}  // namespace

TEST_CASE("group echo: one per interval to the group, written to the table before it leaves") {
  Case c;
  REQUIRE(c.l->info(c.id).echo_slot != 0);
  std::vector<bfd::GroupEcho> got;
  REQUIRE(c.loop.run_until([&] {
    auto g = c.group_echoes();
    got.insert(got.end(), g.begin(), g.end());
    return got.size() >= 3;
  }));
  for (size_t i = 0; i < got.size(); i++) {
    CHECK(got[i].seq == got[0].seq + i);
    auto& sent = c.table.sent_by_socket[got[i].socket];
    REQUIRE(sent.count(got[i].seq) == 1);
    CHECK(sent[got[i].seq] == got[i].nonce);
  }
  CHECK(got[1].nonce != got[0].nonce);
}

TEST_CASE("group echo: a recorded reflection makes it the session's echo; silence fails it") {
  Case c;
  std::vector<bfd::GroupEcho> got;
  REQUIRE(c.loop.run_until([&] {
    auto g = c.group_echoes();
    got.insert(got.end(), g.begin(), g.end());
    return !got.empty();
  }));
  // The datapath records B's reflections of every group echo from now on.
  uint32_t last = got.back().seq;
  c.table.record(c.slot(), last);
  REQUIRE(c.loop.run_until(
      [&] {
        for (const auto& g : c.group_echoes()) c.table.record(c.slot(), last = g.seq);
        return c.l->group_echo(c.id);
      },
      milliseconds(1000)));
  CHECK(c.l->echo_active(c.id));
  // Its unicast echoes stop: nothing more reaches B's unicast socket.
  auto reflect_for = [&](milliseconds t) {
    c.loop.run_until(
        [&] {
          for (const auto& g : c.group_echoes()) c.table.record(c.slot(), last = g.seq);
          return false;
        },
        t);
  };
  reflect_for(milliseconds(100));
  c.unicast_rx->receive_all();
  reflect_for(milliseconds(200));
  CHECK(c.unicast_rx->receive_all().empty());
  CHECK(c.l->session(c.id).state() == bfd::State::Up);
  // B's reflections stop: Down with EchoFailed, so the group echo failed it, not the control
  // packets' detection time (3 x B's 1 s). How fast is bench/failover.sh's to measure.
  REQUIRE(c.loop.run_until([&] { return c.l->session(c.id).state() != bfd::State::Up; },
                           milliseconds(3000)));
  REQUIRE(!c.transitions.empty());
  CHECK(c.transitions.back().diag == bfd::Diag::EchoFailed);
}

TEST_CASE("group echo: a peer that reflects none keeps unicast echoes; group echoes stop") {
  Case c;
  // B reflects unicast echoes by hand; no group reflection is ever recorded.
  REQUIRE(c.loop.run_until(
      [&] {
        for (const auto& [b, port] : c.unicast_rx->receive_all_from())
          c.unicast_rx->send(kLocal4, port, b);
        return c.l->echo_active(c.id);
      },
      milliseconds(1000)));
  CHECK_FALSE(c.l->group_echo(c.id));
  REQUIRE(c.loop.run_until(
      [&] {
        for (const auto& [b, port] : c.unicast_rx->receive_all_from())
          c.unicast_rx->send(kLocal4, port, b);
        return !c.table.stopped.empty();
      },
      milliseconds(2000)));
  c.group_echoes();
  c.loop.run_until(
      [&] {
        for (const auto& [b, port] : c.unicast_rx->receive_all_from())
          c.unicast_rx->send(kLocal4, port, b);
        return false;
      },
      milliseconds(200));
  CHECK(c.group_echoes().empty());
  CHECK(c.l->echo_active(c.id));
  CHECK_FALSE(c.l->group_echo(c.id));
  CHECK(c.l->session(c.id).state() == bfd::State::Up);
}

TEST_CASE("group echo: after a lost one the next kLength leave 4x as often, and the loss shows") {
  Case c(7'500);  // B reflects echoes as often as every 7.5 ms: a burst's rate
  check_burst_then_lossy(c, sent_us(lose_every_third(c)), 2'000);
}

TEST_CASE("group echo: no burst toward a peer that asks for echoes at the plain rate") {
  Case c(30'000);
  auto e = lose_every_third(c);
  REQUIRE(e.size() > 20);
  CHECK(median_gap(e, 0, 20) >= 30'000 - 2'000);
  CHECK(c.loss_changes == std::vector<bool>{true});  // judged at the plain rate all the same
}

TEST_CASE("unicast echo: after a lost one the next kLength leave 4x as often, and the loss shows") {
  Case c(7'500);
  // B reflects unicast echoes by hand and no group echo: once the group probe ends (the
  // table's socket stopped), unicast echo is the session's echo. Then 1.5 s clean (past any
  // burst a slow first reflection started, and its rest), then every third lost.
  auto all = [](size_t) { return true; };
  auto none = [](uint32_t) { return false; };
  REQUIRE(c.loop.run_until([&] {
    c.pump(milliseconds(20), none, all);
    return !c.table.stopped.empty() && c.l->echo_active(c.id);
  }));
  REQUIRE_FALSE(c.l->group_echo(c.id));
  c.pump(milliseconds(1500), none, all);
  auto got = c.pump(milliseconds(1500), none, [](size_t n) { return n % 3 != 0; }).unicast;
  std::vector<uint64_t> us;
  for (auto t : got)
    us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(t - got[0]).count());
  check_burst_then_lossy(c, us, 3'000);  // arrival times at B: a little looser than sends
}

TEST_CASE("group echo: a session that fails in a burst leaves no timer due at once") {
  using bfd::EchoBurst;
  Case c(7'500);
  group_echo_settled(c);
  // B reflects nothing more: a burst starts, and the session fails (EchoFailed, 90 ms) with
  // most of the burst still to go, taking the socket's last group echo user with it.
  auto e = c.pump(milliseconds(150), [](uint32_t) { return false; }).group;
  REQUIRE(c.l->session(c.id).state() != bfd::State::Up);
  CHECK(median_gap(e, 1, 4) <= 30'000 / EchoBurst::kDivisor + 2'000);
  // The loop sleeps until the next deadline: a few dozen wakeups in 300 ms, not thousands.
  int wakeups = 0;
  c.loop.run_until(
      [&] {
        wakeups++;
        return false;
      },
      milliseconds(300));
  CHECK(wakeups < 200);
}
