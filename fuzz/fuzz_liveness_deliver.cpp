// fuzz_liveness_deliver - the BFD receive path (agent::Liveness): decode, Meticulous Keyed
// SHA1, the RFC 5880 §6.7.3 sequence window, the session lookup by (socket, peer address)
// and by discriminator, the session state machine, echo start/stop, reflected echoes
// (echo_back) and the timers, for five sessions over two sockets on "lo" (two local
// addresses in a 127.x.y.0/24 picked at random per process, so runs never share port 3784;
// needs root for SO_BINDTODEVICE). Nothing is sent: what the sessions queue is taken and
// checked instead.
//
// Input: a config byte, then up to 16 datagrams separated by "\n--\n".
//   config   bit 0 no keys (unauthenticated), bit 1 echo off, bit 2 we do not reflect,
//            bits 3-4 multiplier 3/1/2/5, bits 5-6 interval 30/10/100/1000 ms, bit 7 a
//            second key (id 2) that signs
//   byte 0   bits 0-1 the source: peer 0..3 (3 talks to no session), bit 2 the socket
//            (local 0 or 1), bit 3 the echo socket, bit 4 raw, bit 5 run the timers at
//            every deadline up to the new time first, bits 6-7 the unit of the time step
//            (100 us, 1 ms, 10 ms, 100 ms)
//   byte 1   the time step: 1 + this many units, before the datagram
//   rest     the payload
// A control payload whose first 24 bytes parse (A bit and length ignored) has a Your
// Discriminator of 1..16 replaced by the discriminator of session (n-1) % 5, and is signed
// with the test key: with the next sequence number of that (peer, socket) unless its A bit
// was set, then with the number, auth type and key id its own auth section holds (replays,
// wrong types, unknown keys). Raw payloads go as they are. On the echo socket, a payload
// that is not raw reflects one of the last echoes the sessions sent (byte 0 picks it; byte
// 1 bit 0: from the source instead of its own peer, bit 1: to the socket picked instead of
// its session's); raw with one byte removes session byte % 5, or adds it again; raw with
// two bytes records a reflection of a group echo in session byte 0 % 5's slot, as the
// datapath would (one of the last 8 its socket sent, byte 1 % 8 back). Group echo's table
// is in memory.
//
// Nothing may crash, leak, hang or trip UBSan, and (abort otherwise): every state is one of
// the four, echo runs and a link is lossy only while Up, a transition reported is a change
// to the state the session is in, no counter of rejects goes down, the timer (sessions,
// echoes, group echo sends and sweeps) never leaves work due at its own time 8 runs in a row
// (the loop would spin), every packet we queue decodes with our own keys, from one of our
// sessions' discriminators, to one of the peers, and every group echo goes to the all-nodes
// group with the (seq, nonce) the table was given first.
// seeds: fuzz/seeds/fuzz_liveness_deliver
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/liveness.h"
#include "common/log.h"
#include "proto/bfd/codec.h"
#include "proto/bfd/echo.h"

using namespace mlink;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_liveness_deliver: %s\n", what);
  std::abort();
}

constexpr size_t kSessions = 5;
constexpr size_t kPeers = 4;

// The key of the signed vectors (proto/vectors/bfd/signed_*.hex), and a second one.
std::vector<uint8_t> bytes_of(std::string_view s) {
  return {s.begin(), s.end()};
}
const std::vector<uint8_t> kKey1 = bytes_of("mlink-test-key");
const std::vector<uint8_t> kKey2 = bytes_of("mlink-test-key-2");

struct Net {
  std::array<IpAddr, 2> local;
  std::array<IpAddr, kPeers> peer;
};

// 127.a.b.0/24 with a, b random per process: locals .1 and .2, peers .11 to .14.
const Net& net() {
  static const Net n = [] {
    std::random_device rd;
    uint32_t r = rd() ^ static_cast<uint32_t>(getpid()) * 2654435761u;
    std::string base =
        "127." + std::to_string(1 + r % 254) + "." + std::to_string((r >> 8) % 256) + ".";
    Net out;
    for (size_t i = 0; i < 2; i++) out.local[i] = *IpAddr::parse(base + std::to_string(1 + i));
    for (size_t i = 0; i < kPeers; i++) out.peer[i] = *IpAddr::parse(base + std::to_string(11 + i));
    return out;
  }();
  return n;
}

// (local, peer) of each session: two share socket 0, two socket 1, and the last one
// duplicates the first pair (it waits for the lookup until the first is removed).
constexpr std::array<std::pair<size_t, size_t>, kSessions> kPairs{
    {{0, 0}, {0, 1}, {1, 0}, {1, 2}, {0, 0}}};

uint32_t get32(std::span<const uint8_t> b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
}
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; i++) b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

// ml_echo_tx and ml_echo_seen in memory; record() does what ml_ingress does on a reflection.
struct MemEchoTable final : datapath::EchoTable {
  std::array<ml_echo_seen, 16> slot_seen{};
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> sent_nonce;  // (socket, seq) -> nonce
  uint64_t now_ns = 0;

  uint32_t slots() const override { return static_cast<uint32_t>(slot_seen.size()); }
  ml_echo_seen seen(uint32_t slot) const override { return slot_seen.at(slot); }
  void clear_seen(uint32_t slot) override { slot_seen.at(slot) = {}; }
  void sent(uint32_t socket, uint32_t, uint32_t seq, uint64_t nonce) override {
    sent_nonce[{socket, seq}] = nonce;
    if (sent_nonce.size() > 256) sent_nonce.erase(sent_nonce.begin());
  }
  void stop(uint32_t) override {}
  void record(uint32_t slot, uint32_t seq) {  // as bpf/lib/group_echo.h
    ml_echo_seen& s = slot_seen.at(slot);
    uint32_t d = seq - s.seq;  // modulo 2^32: newer when below 2^31
    if (s.count == 0 || (d != 0 && d < 0x80000000u)) {
      s.bits = d >= 64 || s.count == 0 ? 1 : (s.bits << d) | 1;
      s.seq = seq;
      s.last_ns = now_ns;
    } else if (-d < 64) {
      s.bits |= uint64_t{1} << (-d);
    }
    s.count++;
  }
};

struct Fuzz {
  MemEchoTable table;
  std::unique_ptr<agent::Liveness> live;
  bool auth = true;
  uint8_t mult = 3;
  bfd::KeyRing ring;  // ours, to check what the sessions send
  std::array<std::optional<agent::Liveness::Id>, kSessions> ids;
  std::set<uint32_t> discs;  // every discriminator a session of this run had
  std::array<std::array<uint32_t, 2>, kPeers> next_seq{};
  std::vector<agent::Liveness::Outgoing> echoes;  // the last ones sent
  std::array<uint64_t, agent::Liveness::kRejects> rejected{};
  std::array<uint64_t, agent::Liveness::kEchoRejects> echo_refused{};
  uint64_t unmatched = 0;

  agent::Liveness::Target target(size_t i) const {
    auto [l, p] = kPairs[i];
    return {"lo", net().local[l], net().peer[p], "fuzz" + std::to_string(i)};
  }

  void add(size_t i) {
    auto id = live->add(target(i));
    if (!id) fail(("add: " + id.error().message).c_str());
    ids[i] = *id;
    discs.insert(live->session(*id).my_disc());
  }

  // A session on socket `local` (the socket is what counts), if any is left.
  std::optional<agent::Liveness::Id> via(size_t local) const {
    for (size_t i = 0; i < kSessions; i++)
      if (ids[i] && kPairs[i].first == local) return ids[i];
    return std::nullopt;
  }

  void check() {
    size_t present = 0, up = 0;
    for (const auto& id : ids) {
      if (!id) continue;
      present++;
      auto st = live->session(*id).state();
      if (static_cast<uint8_t>(st) > static_cast<uint8_t>(bfd::State::Up))
        fail("a session state that is none of the four");
      bool is_up = live->up(*id);
      if (is_up != (st == bfd::State::Up)) fail("up() disagrees with the session");
      up += is_up;
      if (live->echo_active(*id) && !is_up) fail("echo active on a session that is not Up");
      if (live->lossy(*id) && !is_up) fail("lossy on a session that is not Up");
      if (live->echo_lost(*id) > bfd::EchoLoss::kWindow) fail("more echoes lost than the window");
      auto info = live->info(*id);
      if (info.up != is_up || info.state != st) fail("info() disagrees with the session");
    }
    if (up > present) fail("more sessions Up than sessions");
    auto r = live->rejected();
    for (size_t i = 0; i < r.size(); i++)
      if (r[i] < rejected[i]) fail("a rejected counter went down");
    rejected = r;
    const auto& er = live->echo_refused();
    for (size_t i = 0; i < er.size(); i++)
      if (er[i] < echo_refused[i]) fail("an echo_refused counter went down");
    echo_refused = er;
    if (live->rx_unmatched() < unmatched) fail("rx_unmatched went down");
    unmatched = live->rx_unmatched();
    for (const auto& [key_id, n] : live->rx_by_key())
      if (!ring.keys.count(key_id) || n == 0) fail("accepted under a key we do not have");
    take();
  }

  // What the sessions queued: control packets that decode with our own keys, from one of
  // our discriminators, to a peer; echoes shaped like ours (kept, to be reflected).
  void take() {
    for (auto& o : live->test_take_queued()) {
      if (o.echo && (o.dst == *IpAddr::parse("224.0.0.1") || o.dst == *IpAddr::parse("ff02::1"))) {
        auto g = bfd::decode_group_echo(o.bytes);
        if (!g) fail("a datagram to the all-nodes group that is no group echo");
        auto n = table.sent_nonce.find({g->socket, g->seq});
        if (n == table.sent_nonce.end() || n->second != g->nonce)
          fail("a group echo whose (socket, seq, nonce) the table was not given first");
        continue;
      }
      if (std::find(net().peer.begin(), net().peer.end(), o.dst) == net().peer.end())
        fail("a packet to an address no session talks to");
      if (o.echo) {
        if (o.bytes.size() != bfd::kEchoLen ||
            !std::equal(bfd::kEchoMagic.begin(), bfd::kEchoMagic.end(), o.bytes.begin()))
          fail("an echo not shaped like ours");
        if (!discs.count(get32(o.bytes, 4))) fail("an echo from no session of ours");
        echoes.push_back(std::move(o));
        if (echoes.size() > 16) echoes.erase(echoes.begin());
        continue;
      }
      auto d = bfd::decode(o.bytes, auth ? &ring : nullptr);
      const auto* p = std::get_if<bfd::ControlPacket>(&d);
      if (!p) {
        std::fprintf(stderr, "rejected: %s\n", bfd::to_string(std::get<bfd::Reject>(d)));
        fail("we sent a control packet our own decoder rejects");
      }
      if (!discs.count(p->my_disc)) fail("a control packet from no session of ours");
      if (p->detect_mult != mult) fail("a control packet with another detect mult");
      if (auth != p->auth.has_value()) fail("a control packet signed against the config");
    }
  }
};

Fuzz* current = nullptr;  // for the callbacks

void on_change(agent::Liveness::Id id, const bfd::Transition& tr) {
  if (!current || !current->live) return;
  if (tr.from == tr.to) fail("a transition that changes nothing");
  if (current->live->session(id).state() != tr.to)
    fail("a transition to a state the session is not in");
}

void on_loss(agent::Liveness::Id id, bool lossy, unsigned lost) {
  if (!current || !current->live) return;
  if (lost > bfd::EchoLoss::kWindow) fail("more echoes lost than the window");
  if (lossy && !current->live->up(id)) fail("lossy reported on a session that is not Up");
}

// A control payload made to reach past authentication (see the top of the file); empty:
// deliver it as it is.
std::vector<uint8_t> resign(Fuzz& f, std::span<const uint8_t> in, size_t peer, size_t local) {
  if (in.size() < bfd::kHeaderLen) return {};
  std::vector<uint8_t> head(in.begin(), in.begin() + bfd::kHeaderLen);
  bool had_auth = in[1] & 0x04;
  head[1] &= ~0x04;
  head[3] = bfd::kHeaderLen;
  if (uint32_t yd = get32(head, 8); yd >= 1 && yd <= 16)
    if (auto id = f.ids[(yd - 1) % kSessions]) put32(head, 8, f.live->session(*id).my_disc());
  auto d = bfd::decode(head, nullptr);
  auto* p = std::get_if<bfd::ControlPacket>(&d);
  if (!p) return {};
  if (!f.auth) return had_auth ? std::vector<uint8_t>{} : bfd::encode(*p);
  uint32_t seq = ++f.next_seq[peer][local];
  uint8_t key_id = f.ring.keys.rbegin()->first;
  if (had_auth && in.size() >= bfd::kSignedLen) {
    bfd::Auth a;
    a.type = in[24];  // encode_signed: 4 stays 4, anything else is 5
    p->auth = a;
    key_id = in[26];
    seq = get32(in, 28);
  }
  auto key = f.ring.keys.count(key_id) ? f.ring.keys.at(key_id) : kKey1;
  return bfd::encode_signed(*p, key_id, seq, key);
}

// The timer at every deadline up to t (a bounded number of them), as the loop would run it.
// A run may leave something due at its own time (an echo sent that makes the echo
// detection due now): the loop runs the timer again at once, but a third run at the same
// time means it would spin (bounded at 8: a
// reproducer is seen needing 3, see the commit).
void run_timers(Fuzz& f, uint64_t& last, uint64_t t) {
  uint64_t prev = 0;
  int same = 0;
  for (int n = 0; n < 64; n++) {
    uint64_t due = f.live->test_next_deadline_us();
    if (due > t) return;
    uint64_t at = std::max(due, last);
    same = at == prev ? same + 1 : 0;
    if (same >= 8) fail("the timer would spin: still due at the time it ran, 8 times");
    f.live->test_run_timer(at);
    last = prev = at;
    f.check();
  }
}

}  // namespace

// -entropic=0 unless asked otherwise: a run here touches many features (five sessions,
// sixteen datagrams, the timers), and entropic scheduling's per-feature bookkeeping then
// took 70% of the time (13 execs/s instead of hundreds).
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  log::set_level(log::Level::Error);
  static std::vector<char*> args;
  bool given = false;
  for (int i = 0; i < *argc; i++) {
    args.push_back((*argv)[i]);
    given |= std::string_view((*argv)[i]).starts_with("-entropic=");
  }
  static char entropic_off[] = "-entropic=0";
  if (!given) args.insert(args.begin() + 1, entropic_off);
  args.push_back(nullptr);
  *argc = static_cast<int>(args.size()) - 1;
  *argv = args.data();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t conf = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  Fuzz f;
  agent::Liveness::Options o;
  o.cfg.enabled = true;
  o.cfg.echo = !(conf & 0x02);
  o.reflects = !(conf & 0x04);
  f.mult = std::array<uint8_t, 4>{3, 1, 2, 5}[(conf >> 3) & 3];
  o.cfg.multiplier = f.mult;
  o.cfg.interval_ms = std::array<uint32_t, 4>{30, 10, 100, 1000}[(conf >> 5) & 3];
  f.auth = !(conf & 0x01);
  if (f.auth) {
    o.cfg.keys[1] = kKey1;
    if (conf & 0x80) o.cfg.keys[2] = kKey2;
    for (const auto& [id, k] : o.cfg.keys) f.ring.keys[static_cast<uint8_t>(id)] = k;
    f.ring.required = true;
  } else {
    o.cfg.allow_unauthenticated = true;
  }
  o.echo_table = &f.table;
  f.live = agent::Liveness::create(std::move(o), on_change, on_loss);
  current = &f;
  for (size_t i = 0; i < kSessions; i++) f.add(i);
  f.check();

  uint64_t now = uint64_t{1} << 40;
  uint64_t last_timer = now;
  for (int n = 0; n < 16 && !in.empty(); n++) {
    size_t cut = in.find("\n--\n");
    std::string_view one = in.substr(0, cut);
    in = cut == std::string_view::npos ? std::string_view{} : in.substr(cut + 4);
    if (one.size() < 2) continue;
    auto sel = static_cast<uint8_t>(one[0]);
    auto step = static_cast<uint8_t>(one[1]);
    std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(one.data()) + 2,
                                     one.size() - 2);
    size_t peer = sel & 3, local = (sel >> 2) & 1;
    bool echo = sel & 0x08, raw = sel & 0x10;
    now += (uint64_t{step} + 1) * std::array<uint64_t, 4>{100, 1'000, 10'000, 100'000}[sel >> 6];
    if (sel & 0x20) run_timers(f, last_timer, now);
    last_timer = std::max(last_timer, now);

    f.table.now_ns = now * 1000;
    if (echo && raw && payload.size() == 2) {  // the datapath records a group reflection
      if (auto id = f.ids[payload[0] % kSessions]) {
        uint32_t slot = f.live->info(*id).echo_slot;
        auto next = f.live->test_group_seq(*id);
        if (slot && next) f.table.record(slot - 1, *next - 1 - payload[1] % 8);
      }
    } else if (echo && raw && payload.size() == 1) {  // a session goes, or comes back
      size_t i = payload[0] % kSessions;
      if (f.ids[i]) {
        f.live->remove(*f.ids[i]);
        f.ids[i].reset();
      } else {
        f.add(i);
      }
    } else if (echo && !raw && !f.echoes.empty()) {  // reflect one of ours
      const auto& e =
          f.echoes[payload.empty() ? f.echoes.size() - 1 : payload[0] % f.echoes.size()];
      uint8_t how = payload.size() > 1 ? payload[1] : 0;
      IpAddr src = (how & 1) ? net().peer[peer] : e.dst;
      std::optional<agent::Liveness::Id> to = f.via(local);
      if (!(how & 2)) {
        uint32_t disc = get32(e.bytes, 4);
        for (const auto& id : f.ids)
          if (id && f.live->session(*id).my_disc() == disc) to = id;
      }
      if (to) f.live->test_deliver(*to, e.bytes, src, now, true);
    } else if (auto to = f.via(local)) {
      std::vector<uint8_t> bytes;
      if (!echo && !raw) bytes = resign(f, payload, peer, local);
      if (bytes.empty()) bytes.assign(payload.begin(), payload.end());
      f.live->test_deliver(*to, bytes, net().peer[peer], now, echo);
    }
    f.check();
  }
  current = nullptr;
  return 0;
}
