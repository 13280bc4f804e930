// Two BFD sessions back to back over a simulated link, on a simulated clock.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "bfd/session.h"

using namespace mlink::bfd;

namespace {

struct Sent {
  uint64_t at_us;
  TxPacket pkt;
};

struct Node {
  explicit Node(const SessionConfig& cfg) : s(cfg) {}
  Session s;
  std::vector<Transition> transitions;
  std::vector<Sent> sent;
  bool drop_out = false;  // packets this node sends are lost
  bool mute = false;      // this node is not run at all (peer without BFD)

  const Transition* last_to(State to) const {
    for (auto it = transitions.rbegin(); it != transitions.rend(); ++it)
      if (it->to == to) return &*it;
    return nullptr;
  }
  // Gaps between consecutive packets sent at or after from_us.
  std::vector<uint64_t> gaps_since(uint64_t from_us) const {
    std::vector<uint64_t> g;
    const Sent* prev = nullptr;
    for (const auto& p : sent) {
      if (p.at_us < from_us) continue;
      if (prev) g.push_back(p.at_us - prev->at_us);
      prev = &p;
    }
    return g;
  }
};

SessionConfig cfg(uint32_t disc, uint32_t tx = 30000, uint32_t rx = 30000, uint8_t mult = 3) {
  SessionConfig c;
  c.my_disc = disc;
  c.desired_min_tx_us = tx;
  c.required_min_rx_us = rx;
  c.detect_mult = mult;
  return c;
}

// A point-to-point link with a fixed one-way latency, driven event by event.
class Wire {
 public:
  Wire(const SessionConfig& a_cfg, const SessionConfig& b_cfg) : a(a_cfg), b(b_cfg) {}

  Node a, b;
  uint64_t now = 0;
  uint64_t latency_us = 100;

  void run_until(uint64_t end_us) {
    for (int guard = 0; guard < 2000000; guard++) {
      uint64_t next = std::min(deadline(a), deadline(b));
      for (const auto& f : flights_) next = std::min(next, f.at_us);
      if (next > end_us) break;
      now = std::max(now, next);
      deliver();
      service(a, b);
      service(b, a);
    }
    now = std::max(now, end_us);
  }
  void run_for(uint64_t us) { run_until(now + us); }

  // Runs until both ends are Up with no Poll Sequence left; false after limit_us.
  bool settle(uint64_t limit_us = 5000000) {
    const uint64_t end = now + limit_us;
    while (now < end) {
      run_for(1000);
      if (a.s.state() == State::Up && b.s.state() == State::Up && !a.s.polling() && !b.s.polling())
        return true;
    }
    return false;
  }

 private:
  struct Flight {
    uint64_t at_us;
    Node* to;
    TxPacket pkt;
  };
  std::vector<Flight> flights_;

  static uint64_t deadline(const Node& n) {
    return n.mute ? Session::kNever : n.s.next_deadline_us();
  }

  void deliver() {
    // Arrival order is send order: a fixed latency keeps flights_ sorted.
    while (!flights_.empty() && flights_.front().at_us <= now) {
      Flight f = flights_.front();
      flights_.erase(flights_.begin());
      if (f.to->mute) continue;
      if (auto t = f.to->s.on_packet(f.pkt, now)) f.to->transitions.push_back(*t);
    }
  }

  void service(Node& n, Node& peer) {
    if (n.mute) return;
    if (auto t = n.s.on_timer(now)) n.transitions.push_back(*t);
    if (auto p = n.s.poll_tx(now)) {
      n.sent.push_back({now, *p});
      if (!n.drop_out) flights_.push_back({now + latency_us, &peer, *p});
    }
  }
};

}  // namespace

TEST_CASE("RFC 5880 §6.2 §6.8.6: the three-way handshake brings both ends Up") {
  Wire w(cfg(0x11), cfg(0x22));
  w.run_for(5000);
  CHECK(w.a.s.state() == State::Up);
  CHECK(w.b.s.state() == State::Up);
  // Down -> Init -> Up on each side, in a few packets.
  CHECK(w.a.s.state_changes() == 2);
  CHECK(w.b.s.state_changes() == 2);
  CHECK(w.a.sent.size() <= 4);
  CHECK(w.b.sent.size() <= 4);
  CHECK(w.a.s.remote_disc() == 0x22);
  CHECK(w.b.s.remote_disc() == 0x11);
  REQUIRE(w.a.transitions.size() == 2);
  CHECK(w.a.transitions[0].from == State::Down);
  CHECK(w.a.transitions[0].to == State::Init);
  CHECK(w.a.transitions[1].to == State::Up);
  CHECK(w.a.transitions[1].diag == Diag::None);

  // The Poll Sequences that move both ends from the slow rate to 30 ms end quickly.
  REQUIRE(w.settle(100000));
  CHECK(w.a.s.tx_interval_us() == 30000);
  CHECK(w.b.s.tx_interval_us() == 30000);
  CHECK(w.a.s.detect_time_us() == 90000);
  CHECK(w.b.s.detect_time_us() == 90000);
  for (const auto& p : w.a.sent) CHECK_FALSE((p.pkt.poll && p.pkt.final));
}

TEST_CASE("RFC 5880 §6.2: Down -> Up directly on receiving Init") {
  Wire w(cfg(0x11), cfg(0x22));
  w.b.mute = true;
  w.run_for(1000);
  // B, silent so far, hears A's Down, goes Init and answers.
  RxPacket down = w.a.sent.at(0).pkt;
  Session b(cfg(0x22));
  auto t = b.on_packet(down, 2000);
  REQUIRE(t);
  CHECK(t->to == State::Init);
  auto init = b.poll_tx(2000);
  REQUIRE(init);
  CHECK(init->state == State::Init);
  CHECK(init->your_disc == 0x11);
  auto up = w.a.s.on_packet(*init, 2100);
  REQUIRE(up);
  CHECK(up->from == State::Down);
  CHECK(up->to == State::Up);
}

TEST_CASE("RFC 5880 §6.8.4: one-way loss A->B takes both ends Down within ~100 ms") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  w.run_for(1000000);
  const uint64_t fail = w.now;
  w.a.drop_out = true;
  w.run_for(200000);

  // B stops hearing A: Control Detection Time Expired after 3 x 30 ms.
  const Transition* b_down = w.b.last_to(State::Down);
  REQUIRE(b_down);
  CHECK(b_down->from == State::Up);
  CHECK(b_down->diag == Diag::ControlDetectExpired);
  CHECK(b_down->at_us - fail >= 60000);  // A's last packet left < 30 ms before the cut
  CHECK(b_down->at_us - fail <= 90000);
  CHECK(w.b.s.local_diag() == Diag::ControlDetectExpired);
  CHECK(w.b.s.remote_disc() == 0);  // §6.8.1: zeroed when the detection time passes

  // B's Down (Your Discriminator 0 now) still reaches A: Neighbor Signaled Session Down.
  const Transition* a_down = w.a.last_to(State::Down);
  REQUIRE(a_down);
  CHECK(a_down->from == State::Up);
  CHECK(a_down->diag == Diag::NeighborDown);
  CHECK(a_down->at_us - fail <= 100000);
  CHECK(a_down->at_us >= b_down->at_us);

  // While the loss lasts, neither end comes back Up (A only hears B, B hears nothing).
  const uint64_t a_changes = w.a.s.state_changes();
  w.run_for(5000000);
  CHECK(w.a.s.state() == State::Init);  // Down -> Init on B's Down, then stuck: B never hears
  CHECK(w.b.s.state() == State::Down);
  CHECK(w.a.s.state_changes() == a_changes + 1);
  CHECK(w.a.s.detect_time_us() == 3000000);  // B's slow 1 s Down packets keep A in Init

  // Recovery: once A's packets get through again, both are Up within the slow-rate handshake.
  const uint64_t heal = w.now;
  w.a.drop_out = false;
  w.run_for(2500000);
  CHECK(w.a.s.state() == State::Up);
  CHECK(w.b.s.state() == State::Up);
  const Transition* b_up = w.b.last_to(State::Up);
  REQUIRE(b_up);
  CHECK(b_up->at_us - heal <= 1100000);  // A's next (Init) packet, at most 1 s away
  CHECK(w.b.s.local_diag() == Diag::None);
}

TEST_CASE("RFC 5880 §6.8.7: periodic packets are jittered to 75-100 % of the interval") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  const uint64_t from = w.now;
  w.run_for(1001 * 30000);
  auto gaps = w.a.gaps_since(from);
  REQUIRE(gaps.size() >= 1000);
  gaps.resize(1000);
  uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
  for (uint64_t g : gaps) {
    CHECK(g >= 22500);
    CHECK(g <= 30000);
    lo = std::min(lo, g);
    hi = std::max(hi, g);
    sum += g;
  }
  // Actually random: the whole range is used, the mean near 87.5 %.
  CHECK(lo < 23000);
  CHECK(hi > 29500);
  CHECK(sum / 1000 > 25500);
  CHECK(sum / 1000 < 27000);
  CHECK(w.a.s.state_changes() == 2);
  CHECK(w.b.s.state_changes() == 2);
}

TEST_CASE("RFC 5880 §6.8.7: with Detect Mult 1 packets are jittered to 75-90 %") {
  Wire w(cfg(0x11, 30000, 30000, 1), cfg(0x22));
  REQUIRE(w.settle());
  const uint64_t from = w.now;
  w.run_for(1001 * 30000);
  auto gaps = w.a.gaps_since(from);
  REQUIRE(gaps.size() >= 1000);
  gaps.resize(1000);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint64_t g : gaps) {
    CHECK(g >= 22500);
    CHECK(g <= 27000);
    lo = std::min(lo, g);
    hi = std::max(hi, g);
  }
  CHECK(lo < 23000);
  CHECK(hi > 26500);
  // B's detection time for A is 1 x 30 ms: the jitter keeps it from expiring.
  CHECK(w.b.s.detect_time_us() == 30000);
  CHECK(w.b.s.state_changes() == 2);
}

TEST_CASE("RFC 5880 §6.8.3: not Up, packets go at the slow rate (1 s, tunable)") {
  Wire w(cfg(0x11), cfg(0x22));
  w.b.mute = true;  // a peer not running BFD
  w.run_for(10000000);
  auto gaps = w.a.gaps_since(0);
  REQUIRE(gaps.size() >= 9);
  for (uint64_t g : gaps) {
    CHECK(g >= 750000);
    CHECK(g <= 1000000);
  }
  for (const auto& p : w.a.sent) {
    CHECK(p.pkt.state == State::Down);
    CHECK(p.pkt.desired_min_tx_us == 1000000);  // advertised too, not only used
    CHECK(p.pkt.required_min_rx_us == 30000);
    CHECK(p.pkt.your_disc == 0);
    CHECK_FALSE(p.pkt.poll);
  }
  CHECK(w.a.s.state() == State::Down);

  SessionConfig fast = cfg(0x33);
  fast.down_min_tx_us = 200000;
  Wire v(fast, cfg(0x44));
  v.b.mute = true;
  v.run_for(2000000);
  for (uint64_t g : v.a.gaps_since(0)) {
    CHECK(g >= 150000);
    CHECK(g <= 200000);
  }
  CHECK(v.a.sent.at(0).pkt.desired_min_tx_us == 200000);

  // Once Up the configured interval is advertised.
  Wire u(cfg(0x55), cfg(0x66));
  REQUIRE(u.settle());
  CHECK(u.a.sent.back().pkt.desired_min_tx_us == 30000);
}

TEST_CASE("RFC 5880 §6.5 §6.8.3: set_timers polls; new intervals apply at the Final") {
  // A 30/30 ms, B sends every 10 ms: A's detection time is 3 x max(30, 10) = 90 ms.
  Wire w(cfg(0x11), cfg(0x22, 10000, 30000));
  REQUIRE(w.settle());
  w.run_for(500000);
  CHECK(w.a.s.detect_time_us() == 90000);
  CHECK(w.a.s.tx_interval_us() == 30000);
  CHECK(w.b.s.detect_time_us() == 90000);

  // A slows its own tx to 100 ms and asks B for 10 ms.
  REQUIRE(w.a.s.set_timers(100000, 10000));
  CHECK(w.a.s.polling());
  // Before the Final: the tx increase and the rx decrease are both held.
  CHECK(w.a.s.tx_interval_us() == 30000);
  CHECK(w.a.s.detect_time_us() == 90000);
  // §6.5: the Poll rides the scheduled periodic packet, nothing extra is sent now.
  CHECK(w.a.s.next_deadline_us() > w.now);

  const size_t a_mark = w.a.sent.size();
  const size_t b_mark = w.b.sent.size();
  w.run_for(35000);
  REQUIRE(w.a.sent.size() > a_mark);
  const TxPacket& poll = w.a.sent[a_mark].pkt;
  CHECK(poll.poll);
  CHECK_FALSE(poll.final);
  CHECK(poll.desired_min_tx_us == 100000);
  CHECK(poll.required_min_rx_us == 10000);
  // B answers at once with F, P clear.
  bool final_seen = false;
  for (size_t i = b_mark; i < w.b.sent.size(); i++) {
    const auto& s = w.b.sent[i];
    if (!s.pkt.final) continue;
    final_seen = true;
    CHECK_FALSE(s.pkt.poll);
    CHECK(s.at_us == w.a.sent[a_mark].at_us + w.latency_us);
    break;
  }
  CHECK(final_seen);

  // After the Final: A sends every 100 ms, detects B in 3 x 10 ms; B waits 300 ms for A.
  CHECK_FALSE(w.a.s.polling());
  CHECK(w.a.s.tx_interval_us() == 100000);
  CHECK(w.a.s.detect_time_us() == 30000);
  CHECK(w.b.s.detect_time_us() == 300000);
  CHECK(w.b.s.tx_interval_us() == 10000);

  const uint64_t from = w.now;
  w.run_for(2000000);
  for (uint64_t g : w.a.gaps_since(from)) CHECK(g <= 100000);
  for (uint64_t g : w.b.gaps_since(from)) CHECK(g <= 10000);
  for (size_t i = a_mark + 1; i < w.a.sent.size(); i++) CHECK_FALSE(w.a.sent[i].pkt.poll);
  CHECK(w.a.s.state_changes() == 2);  // no flap through the change
  CHECK(w.b.s.state_changes() == 2);
}

TEST_CASE("RFC 5880 §6.5: a Poll is answered with a Final at once, whatever the timer") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  w.run_for(100000);
  // Just after a periodic packet, B polls.
  RxPacket p = w.b.sent.back().pkt;
  p.poll = true;
  const uint64_t t = w.now + 10;
  CHECK_FALSE(w.a.s.on_packet(p, t));
  CHECK(w.a.s.next_deadline_us() == t);
  auto f = w.a.s.poll_tx(t);
  REQUIRE(f);
  CHECK(f->final);
  CHECK_FALSE(f->poll);
  CHECK(f->state == State::Up);
  CHECK_FALSE(w.a.s.poll_tx(t));  // one Final per Poll
}

TEST_CASE("RFC 5880 §6.8.4: detection time per direction with asymmetric intervals") {
  SUBCASE("A 10 ms, B 50 ms") {
    Wire w(cfg(0x11, 10000, 10000), cfg(0x22, 50000, 50000));
    REQUIRE(w.settle());
    // Each side: remote mult x max(local required rx, remote desired tx).
    CHECK(w.a.s.detect_time_us() == 3 * 50000);
    CHECK(w.b.s.detect_time_us() == 3 * 50000);
    // Each side sends at max(local desired tx, remote required rx).
    CHECK(w.a.s.tx_interval_us() == 50000);
    CHECK(w.b.s.tx_interval_us() == 50000);
  }
  SUBCASE("different multipliers and rx/tx in each direction") {
    // A: tx 10, rx 40, mult 3. B: tx 20, rx 15, mult 5.
    Wire w(cfg(0x11, 10000, 40000, 3), cfg(0x22, 20000, 15000, 5));
    REQUIRE(w.settle());
    CHECK(w.a.s.detect_time_us() == 5 * 40000);  // B's mult x max(A rx 40, B tx 20)
    CHECK(w.b.s.detect_time_us() == 3 * 15000);  // A's mult x max(B rx 15, A tx 10)
    CHECK(w.a.s.tx_interval_us() == 15000);      // max(A tx 10, B rx 15)
    CHECK(w.b.s.tx_interval_us() == 40000);      // max(B tx 20, A rx 40)
    const uint64_t from = w.now;
    w.run_for(3000000);
    for (uint64_t g : w.a.gaps_since(from)) CHECK(g <= 15000);
    for (uint64_t g : w.b.gaps_since(from)) CHECK(g <= 40000);
    CHECK(w.a.s.state_changes() == 2);
    CHECK(w.b.s.state_changes() == 2);
  }
}

TEST_CASE("RFC 5880 §6.8.16 §6.8.6: AdminDown takes the peer Down (Neighbor Down), not Init") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  w.run_for(100000);
  auto t = w.a.s.set_admin_down(true, w.now);
  REQUIRE(t);
  CHECK(t->from == State::Up);
  CHECK(t->to == State::AdminDown);
  CHECK(t->diag == Diag::AdminDown);
  CHECK(w.a.s.next_deadline_us() == w.now);  // announced at once
  const size_t mark = w.a.sent.size();
  w.run_for(5000000);
  REQUIRE(w.a.sent.size() > mark);
  CHECK(w.a.sent[mark].pkt.state == State::AdminDown);
  CHECK(w.a.sent[mark].pkt.diag == Diag::AdminDown);

  // "If received state is AdminDown: if bfd.SessionState is not Down, LocalDiag 3, Down".
  const Transition* b_down = w.b.last_to(State::Down);
  REQUIRE(b_down);
  CHECK(b_down->diag == Diag::NeighborDown);
  CHECK(b_down->at_us == w.a.sent[mark].at_us + w.latency_us);
  CHECK(w.b.s.remote_state() == State::AdminDown);
  CHECK(w.b.s.state() == State::Down);  // stays Down: AdminDown never moves Down to Init
  CHECK(w.b.s.state_changes() == 3);

  // The AdminDown end discards what it receives, never times out, keeps sending slowly.
  CHECK(w.a.s.state() == State::AdminDown);
  CHECK(w.a.s.state_changes() == 3);
  CHECK(w.a.s.rx_discarded() > 0);
  CHECK(w.a.sent.size() - mark >= 5);
  for (uint64_t g : w.a.gaps_since(w.a.sent[mark + 1].at_us)) CHECK(g >= 750000);

  CHECK_FALSE(w.a.s.set_admin_down(true, w.now));  // already
  auto up = w.a.s.set_admin_down(false, w.now);
  REQUIRE(up);
  CHECK(up->from == State::AdminDown);
  CHECK(up->to == State::Down);
  REQUIRE(w.settle(3000000));
}

TEST_CASE("RFC 5880 §6.8.6: Your Discriminator 0 with a state other than Down is discarded") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  w.run_for(100000);
  const uint64_t deadline = w.a.s.next_deadline_us();
  const uint64_t discarded = w.a.s.rx_discarded();
  RxPacket p = w.b.sent.back().pkt;
  REQUIRE(p.state == State::Up);
  p.your_disc = 0;
  p.poll = true;
  p.required_min_rx_us = 500000;
  CHECK_FALSE(w.a.s.on_packet(p, w.now + 1));
  CHECK(w.a.s.rx_discarded() == discarded + 1);
  CHECK(w.a.s.next_deadline_us() == deadline);  // no Final owed, detection not refreshed
  CHECK(w.a.s.tx_interval_us() == 30000);       // nothing taken from it
  p.state = State::Init;
  CHECK_FALSE(w.a.s.on_packet(p, w.now + 2));
  // A nonzero Your Discriminator that is not ours: someone else's packet.
  p = w.b.sent.back().pkt;
  p.your_disc = 0x99;
  p.state = State::Down;
  CHECK_FALSE(w.a.s.on_packet(p, w.now + 3));
  CHECK(w.a.s.rx_discarded() == discarded + 3);
  CHECK(w.a.s.state() == State::Up);

  // With state Down, Your Discriminator 0 is valid (the peer timed out): A goes Down.
  p.your_disc = 0;
  auto t = w.a.s.on_packet(p, w.now + 4);
  REQUIRE(t);
  CHECK(t->to == State::Down);
  CHECK(t->diag == Diag::NeighborDown);
}

TEST_CASE("RFC 5880 §6.8.6: the A bit must match the session's authentication") {
  SessionConfig c = cfg(0x11);
  c.auth = true;
  Session s(c);
  RxPacket p;
  p.detect_mult = 3;
  p.my_disc = 0x22;
  p.desired_min_tx_us = p.required_min_rx_us = 1000000;
  CHECK_FALSE(s.on_packet(p, 10));  // A clear, auth in use
  CHECK(s.rx_discarded() == 1);
  p.auth_present = true;
  CHECK(s.on_packet(p, 20));  // Down -> Init
  auto tx = s.poll_tx(20);
  REQUIRE(tx);
  CHECK(tx->auth_present);
}

TEST_CASE("RFC 5880 §6.8.4: detection runs only in Init and Up") {
  Session s(cfg(0x11));
  RxPacket p;
  p.state = State::AdminDown;
  p.detect_mult = 3;
  p.my_disc = 0x22;
  p.desired_min_tx_us = p.required_min_rx_us = 1000000;
  CHECK_FALSE(s.on_packet(p, 0));  // Down stays Down
  CHECK(s.detect_time_us() == 3000000);
  CHECK(s.next_deadline_us() <= 3000000);
  CHECK_FALSE(s.on_timer(3000000));  // expires in Down: no transition...
  CHECK(s.remote_disc() == 0);       // ...but bfd.RemoteDiscr is forgotten
  CHECK(s.state() == State::Down);

  p.state = State::Down;
  auto t = s.on_packet(p, 4000000);
  REQUIRE(t);
  CHECK(t->to == State::Init);
  CHECK_FALSE(s.on_timer(6999999));
  t = s.on_timer(7000000);
  REQUIRE(t);
  CHECK(t->from == State::Init);
  CHECK(t->to == State::Down);
  CHECK(t->diag == Diag::ControlDetectExpired);
  auto tx = s.poll_tx(7000000);
  REQUIRE(tx);
  CHECK(tx->state == State::Down);
  CHECK(tx->diag == Diag::ControlDetectExpired);
  CHECK(tx->your_disc == 0);
}

TEST_CASE("RFC 5880 §6.1 §6.8.7: a passive session sends nothing until it hears the peer") {
  SessionConfig pc = cfg(0x22);
  pc.passive = true;
  Wire w(cfg(0x11), pc);
  w.a.drop_out = true;
  w.run_for(3000000);
  CHECK(w.b.sent.empty());
  CHECK(w.b.s.next_deadline_us() == Session::kNever);
  w.a.drop_out = false;
  REQUIRE(w.settle(3000000));
  CHECK(w.b.sent.front().pkt.your_disc == 0x11);
}

TEST_CASE("RFC 5880 §6.8.3: a shorter remote Required Min RX is honoured at once") {
  Wire w(cfg(0x11, 10000, 10000), cfg(0x22, 10000, 200000));
  REQUIRE(w.settle());
  CHECK(w.a.s.tx_interval_us() == 200000);
  w.run_for(50000);
  // B now accepts 10 ms: A must not wait out its 200 ms slot.
  REQUIRE(w.b.s.set_timers(10000, 10000));
  const uint64_t from = w.now;
  w.run_for(500000);
  CHECK(w.a.s.tx_interval_us() == 10000);
  auto gaps = w.a.gaps_since(from);
  REQUIRE(gaps.size() > 10);
  for (size_t i = 2; i < gaps.size(); i++) CHECK(gaps[i] <= 10000);
  CHECK(w.b.s.state_changes() == 2);
}

TEST_CASE("RFC 5880 §6.5 §6.8.3: intervals changed mid-Poll wait for a Final to a newer Poll") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  w.run_for(100000);
  REQUIRE(w.a.s.set_timers(60000, 30000));
  const size_t mark = w.a.sent.size();
  while (w.a.sent.size() == mark) w.run_for(50);
  REQUIRE(w.a.sent.back().pkt.poll);
  REQUIRE(w.a.sent.back().pkt.desired_min_tx_us == 60000);
  // The first Poll is on the wire with 60 ms; A changes its mind to 100 ms.
  REQUIRE(w.a.s.set_timers(100000, 30000));
  w.run_for(w.latency_us + 1);  // B's Final to the 60 ms Poll is back
  CHECK(w.a.s.polling());
  CHECK(w.a.s.tx_interval_us() == 30000);  // still held
  w.run_for(100000);                       // a new Poll, carrying 100 ms, and its Final
  CHECK_FALSE(w.a.s.polling());
  CHECK(w.a.s.tx_interval_us() == 100000);
  CHECK(w.b.s.detect_time_us() == 300000);
  CHECK(w.b.s.state_changes() == 2);
}

TEST_CASE("RFC 5880 §6.4: an echo failure takes the session Down (Echo Function Failed)") {
  Wire w(cfg(0x11), cfg(0x22));
  REQUIRE(w.settle());
  auto t = w.a.s.echo_failed(w.now);
  REQUIRE(t);
  CHECK(t->to == State::Down);
  CHECK(t->diag == Diag::EchoFailed);
  CHECK(w.a.s.local_diag() == Diag::EchoFailed);
  CHECK_FALSE(w.a.s.echo_failed(w.now));  // only from Up
  w.run_for(5000);
  REQUIRE(w.b.last_to(State::Down));
  CHECK(w.b.last_to(State::Down)->diag == Diag::NeighborDown);
}

TEST_CASE("a restarted agent resumes a session Up: the peer sees no change") {
  // b's control packets go every second, as while its echo runs, so a's
  // detection time (3 s) outlasts b's restart.
  Wire w(cfg(0x11), cfg(0x22, 1000000));
  REQUIRE(w.settle());
  CHECK(w.a.s.detect_time_us() == 3000000);
  auto snap = w.b.s.snapshot();
  CHECK(snap.my_disc == 0x22);
  CHECK(snap.remote_disc == 0x11);
  CHECK(snap.remote_detect_mult == 3);
  size_t a_changes = w.a.transitions.size();
  w.b.mute = true;  // b's agent dies
  w.run_for(1500000);
  w.b.s = Session(cfg(0x22, 1000000));  // the next agent: a fresh session...
  auto wrong = snap;
  wrong.my_disc = 0x23;
  CHECK_FALSE(w.b.s.resume(wrong, w.now));  // (only with the discriminator the peer knows)
  auto t = w.b.s.resume(snap, w.now);       // ...resumed from the saved state
  REQUIRE(t);
  CHECK(t->to == State::Up);
  w.b.mute = false;
  w.run_for(5000000);
  CHECK(w.a.transitions.size() == a_changes);  // a never left Up
  CHECK(w.a.s.state() == State::Up);
  CHECK(w.b.s.state() == State::Up);
  CHECK(w.b.s.state_changes() == 1);
  CHECK_FALSE(Session(cfg(0x22)).resume(Session::Snapshot{0x22, 0, 3, 1, 1}, 0));  // no peer
}
