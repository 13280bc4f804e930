// liveness.h - which links are proven to work in both directions.
//
// One single-hop BFD session (RFC 5880/5881) per (peer, link), over sockets
// bound to the link, shared by every session that uses the same local
// address. A link may carry a peer's traffic only while that session is Up,
// so a one-way silent failure takes the link out on both ends within the
// detection time (30 ms × 3 by default), before TCP's 200 ms minimum RTO.
// Everything runs on the agent's event loop: one io source per socket and
// one timer armed at the earliest session or echo deadline. A packet finds
// its session by index and the timer takes only the sessions that are due,
// so the work per event does not grow with the number of sessions.
//
// Echo (RFC 5880 §6.4): when the peer advertises a Required Min Echo RX
// Interval, an Up session also sends echo packets that the peer's datapath
// reflects. Once one comes back, the echo proves the link at the configured
// rate and the control packets slow to 1 s (§6.8.3), so a peer whose agent
// restarts keeps its links: its datapath still reflects, and its control
// packets may pause for up to 3 s. A peer that advertises echo but does not
// reflect (FRR 8.4 advertises 50 ms by default) is left on control packets.
//
// Loss: an Up session whose echoes come back with gaps (bfd/echo_loss.h) is
// reported lossy; the link leaves the set until its echoes are clean again.
//
// Restart: the state of every Up session (discriminators, the peer's
// parameters) and the auth sequence are kept in a small file, so the next
// agent resumes each session Up and the peer sees no change.
#pragma once

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/sessions.h"
#include "bfd/auth_seq.h"
#include "bfd/echo_burst.h"
#include "bfd/echo_loss.h"
#include "bfd/session.h"
#include "bfd/transport.h"
#include "common/ip.h"
#include "common/log.h"
#include "common/result.h"
#include "config/config.h"
#include "datapath/datapath.h"
#include "proto/bfd/echo.h"

struct sd_event;
struct sd_event_source;

namespace mlink::agent {

class Liveness final : public SessionDriver {
 public:
  using Target = SessionTarget;  // one (peer, link) pair
  using OnChange = std::function<void(Id target, const bfd::Transition&)>;
  // An Up session became lossy (or clean again); lost: of the last kWindow echoes.
  using OnLoss = std::function<void(Id target, bool lossy, unsigned lost)>;

  struct Options {
    config::Bfd cfg;
    bool reflects = false;      // our datapath reflects echoes: advertise Required Min Echo RX
    std::string state_path;     // where sessions are kept across a restart; empty: nowhere
    int socket_filter_fd = -1;  // the datapath's guard for every BFD socket; -1: none
    // Resume the Up sessions the state file holds (the datapath was adopted, so the peers'
    // links never went). Either way its sequence numbers are kept: our packets stay in the
    // peers' windows and theirs that were accepted stay replays.
    bool resume = true;
    // Group echo's shared memory (datapath::EchoTable); nullptr: unicast echoes only.
    datapath::EchoTable* echo_table = nullptr;
  };
  static std::unique_ptr<Liveness> create(Options opts, OnChange on_change, OnLoss on_loss = {});
  ~Liveness() override;

  Status attach(sd_event* loop);  // runs the sessions on the loop
  // Sessions come and go with discovery; a socket, once open, stays.
  Result<Id> add(const Target& t) override;
  void remove(Id target) override;  // tells the peer (AdminDown) when the session is not Down
  SessionInfo info(Id target) const override;
  bool group_echo(Id target) const;  // its echo runs as group echo (Active)
  bool up(Id target) const;
  const bfd::Session& session(Id target) const { return entries_.at(target).session; }
  // Dropped packets by bfd::Reject, and at kBadHopLimit those that did not
  // arrive with TTL 255.
  static constexpr size_t kBadHopLimit = static_cast<size_t>(bfd::Reject::Replay) + 1;
  static constexpr size_t kRejects = kBadHopLimit + 1;
  std::array<uint64_t, kRejects> rejected() const;
  static const char* reject_name(size_t i) {  // the label of rejected()[i]
    return i == kBadHopLimit ? "bad_hop_limit" : bfd::to_string(static_cast<bfd::Reject>(i));
  }
  uint64_t rx_unmatched() const { return rx_unmatched_; }
  // Datagrams on the echo sockets that prove nothing, by bfd::EchoReject: not shaped like
  // our echoes, or not tagged with this agent's echo key (forged, or the previous agent's).
  static constexpr size_t kEchoRejects = static_cast<size_t>(bfd::EchoReject::BadTag) + 1;
  const std::array<uint64_t, kEchoRejects>& echo_refused() const { return echo_refused_; }
  // Packets accepted, by the key id that signed them: in a rotation, the old key's count
  // stops growing once every peer signs with the new one.
  const std::map<uint8_t, uint64_t>& rx_by_key() const { return rx_by_key_; }
  uint64_t stalls() const { return stalls_; }
  bool echo_active(Id target) const;
  bool lossy(Id target) const;            // Up, but losing echoes (only while echo runs)
  unsigned echo_lost(Id target) const;    // of the last bfd::EchoLoss::kWindow decided echoes
  uint64_t echo_rtt_us(Id target) const;  // of the last echo; 0 when none
  // New keys (reload): every key verifies, send_key_id signs (none: the highest id). Refused
  // when it would turn authentication on or off, or send_key_id is not a key.
  Status set_keys(const KeyMap& keys, std::optional<uint32_t> send_key_id);
  uint8_t send_key_id() const { return send_key_id_; }
  // Saves the sessions if a packet was sent since the last save (call every second: a
  // resumed session's first sequence number is estimated from that cadence).
  void checkpoint();
  static constexpr uint64_t kCheckpointUsec = 1'000'000;
  // A clean stop: the sessions end with this agent, nothing to resume; only the sequence
  // numbers are kept, so the next agent's packets fall in the peers' windows.
  void forget_state();

  // For tests and the fuzzer of the receive path (fuzz/fuzz_liveness_deliver.cpp), with no
  // loop attached: no socket is read, and what is queued stays queued until taken.
  // One datagram as if it arrived at now_us from src on the control socket (echo: the echo
  // socket) that session `via` uses; false when there is no such session.
  bool test_deliver(Id via, std::span<const uint8_t> bytes, const IpAddr& src, uint64_t now_us,
                    bool echo = false);
  void test_run_timer(uint64_t now_us);  // the timer's work at now_us (sessions and echoes due)
  struct Outgoing {
    bool echo = false;
    IpAddr dst;
    std::vector<uint8_t> bytes;
  };
  std::vector<Outgoing> test_take_queued();  // control packets and echoes not yet sent
  // The next group echo sequence number of the socket `via` uses; nullopt when none.
  std::optional<uint32_t> test_group_seq(Id via) const;
  uint64_t test_next_deadline_us() const {  // the earliest due time of any session or echo
    uint64_t s = timers_.empty() ? std::numeric_limits<uint64_t>::max() : timers_.begin()->first;
    return std::min(s, next_group_due());
  }

 private:
  enum class Echo { Off, Probing, Active, Unsupported };
  // Group echo per session: Probing while the link's group echoes are offered, Active once
  // the peer reflected one (its unicast echoes stop), No when it did not (unicast stays).
  enum class Group { Off, Probing, Active, No };
  static constexpr uint32_t kNoSlot = std::numeric_limits<uint32_t>::max();
  struct Entry {
    Id id;
    Target target;
    bfd::Session session;
    size_t socket;                   // index into sockets_ / echo_sockets_
    bfd::RxAuthSeq rx_auth;          // §6.7.3 bfd.RcvAuthSeq and bfd.AuthSeqKnown
    uint32_t tx_seq = 0;             // §6.7.3 bfd.XmitAuthSeq: per session, random start
    uint32_t remote_echo_rx_us = 0;  // the peer reflects echoes at most this often; 0: not at all
    Echo echo = Echo::Off;
    uint64_t echo_since_us = 0;  // probing started
    uint64_t echo_last_rx_us = 0;
    uint32_t echo_unanswered = 0;  // sent since the last one came back
    uint64_t echo_next_tx_us = 0;
    uint64_t echo_rtt_us = 0;
    uint32_t echo_seq = 0;
    bfd::EchoLoss loss;
    bfd::EchoBurst burst;     // unicast echoes faster after a miss
    uint32_t slot = kNoSlot;  // its ml_echo_seen entry (group echo)
    Group group = Group::Off;
    uint64_t group_since_us = 0;
    uint64_t group_count = 0;      // ml_echo_seen count at the last read
    uint32_t group_seq = 0;        // the newest group echo that came back
    uint32_t group_first_seq = 0;  // the socket's first group echo this session counts
    uint64_t due_us = std::numeric_limits<uint64_t>::max();  // its key in timers_
  };
  struct Saved {
    bool resume = false;  // it was Up when a running agent saved it
    bfd::Session::Snapshot snap;
    uint32_t remote_echo_rx_us = 0;
    std::optional<uint32_t> tx_seq;  // the next number to send, as saved
    uint64_t tx_interval_us = 0;     // how often it sent then
    std::optional<uint32_t> rx_seq;  // bfd.RcvAuthSeq, known until rx_forget_at_us
    uint64_t rx_forget_at_us = 0;    // CLOCK_MONOTONIC, the same for every process
  };
  // (device, its ifindex when the socket was opened, local): a device deleted and made anew
  // under the same name gets new sockets, bound to the new one.
  using SocketKey = std::tuple<std::string, unsigned, IpAddr>;
  using SessionKey = std::tuple<std::string, IpAddr, IpAddr>;
  struct GroupTx;

  Liveness(Options opts, OnChange on_change, OnLoss on_loss);
  static int on_readable(sd_event_source*, int, uint32_t, void*);
  static int on_timer(sd_event_source*, uint64_t, void*);
  static int on_save_timer(sd_event_source*, uint64_t, void*);
  Status watch(size_t socket);
  void receive(size_t socket);
  void reject(bfd::Reject r, const IpAddr& from);
  void deliver(size_t socket, std::span<const uint8_t> bytes, const IpAddr& src, uint64_t now);
  void changed(Id id, const bfd::Transition& tr);
  Result<size_t> socket_for(const Target& t);
  void release_socket(size_t socket);  // its last session went
  void receive_echo(size_t socket);
  void echo_back(size_t socket, const BatchReceiver::Datagram& d, uint64_t now);
  void start_echo(Entry& e, uint64_t now);
  void stop_echo(Entry& e);
  void run_echo(Id id, uint64_t now);
  uint64_t echo_interval_us(const Entry& e) const;
  uint64_t echo_burst_interval_us(const Entry& e) const;
  static bool is_lossy(const Entry& e);
  uint64_t next_echo_deadline(const Entry& e) const;
  // Group echo (liveness_group.cpp).
  void start_group(Entry& e, uint64_t now);
  void stop_group(Entry& e);
  bool run_group(Id id, Entry& e, uint64_t now);  // true: group echo is its echo now
  std::optional<bool> read_group(Entry& e);       // its slot; a change of lossy, if any
  bool group_failed(const Entry& e, uint64_t now) const;
  uint64_t group_burst_gap(const GroupTx& g) const;
  void send_group_due(uint64_t now);
  void sweep_group_due(uint64_t now);
  uint64_t next_group_due() const;
  uint64_t group_interval_us() const { return uint64_t{cfg_.interval_ms} * 1000; }
  uint32_t alloc_slot();
  void load_state();
  void save_state();
  void restore(Entry& e, const Saved& s, uint64_t now);
  // A session changed: the state file is written once, kSaveDelayUsec later,
  // for all that changed meanwhile (not once per change: 4,000 sessions
  // coming up would write it 4,000 times).
  void state_changed();
  static constexpr uint64_t kSaveDelayUsec = 100'000;
  static constexpr uint32_t kEchoControlTxUs = 1'000'000;  // §6.8.3: control >= 1 s while echo runs
  static constexpr uint64_t kEchoProbeUsec = 1'000'000;    // no reflection within this: none
  // What we ask peers to send at most (Required Min Echo RX): our datapath reflects at any
  // rate, so the rate of a loss burst (bfd/echo_burst.h).
  uint32_t echo_rx_advertised_us() const {
    return reflects_ && cfg_.echo ? cfg_.interval_ms * 1000 / bfd::EchoBurst::kDivisor : 0;
  }
  // A bounded amount per callback, so a flood on one socket cannot hold the
  // loop (the timers of every session run between two callbacks).
  static constexpr int kBatchesPerCallback = 4;
  void after_stall(uint64_t late_us);  // the timer ran that late: read what arrived
  void run_due(uint64_t now);
  void send_due(Id target, uint64_t now);
  // Control packets and echoes are queued per socket and leave together, one
  // sendmmsg per socket at the end of each callback.
  void queue(std::vector<std::pair<IpAddr, bfd::Bytes64>>& q, const IpAddr& dst,
             std::span<const uint8_t> bytes);
  void flush_tx();
  // The entry's next deadline (session or echo) changed: re-file it in timers_.
  void touch(Id id);
  void rearm();
  uint64_t now() const;

  config::Bfd cfg_;
  bool reflects_ = false;
  int filter_fd_ = -1;
  log::RateLimit reject_log_;  // rejected packets: 10 lines a second at most
  std::string state_path_;
  bool opts_resume_ = true;  // Options::resume
  OnChange on_change_;
  OnLoss on_loss_;
  std::unordered_map<Id, Entry> entries_;  // nodes stay put: GroupTx::members points into it
  // Indexes, so that a packet or a timer costs O(log n) in the number of
  // sessions, not a scan of all of them.
  std::set<std::pair<uint64_t, Id>> timers_;           // (due_us, id)
  std::map<std::pair<size_t, IpAddr>, Id> by_remote_;  // (socket, peer address)
  std::map<uint32_t, Id> by_disc_;                     // my discriminator (echo)
  Id next_id_ = 0;
  uint32_t disc_base_ = 0;
  // Per link and local address, by index (Entry::socket). A socket no session uses any more
  // (its link deleted or taken out) is closed and its index reused by the next one opened.
  std::vector<bfd::LinkSocket> sockets_;
  std::vector<bfd::EchoSocket> echo_sockets_;        // same index as sockets_
  std::vector<unsigned> socket_users_;               // sessions per socket
  std::vector<std::array<sd_event_source*, 2>> io_;  // per socket: control, echo
  BatchReceiver rx_batch_{64, 1500};                 // shared: one socket is read at a time
  std::vector<std::vector<std::pair<IpAddr, bfd::Bytes64>>> ctl_tx_, echo_tx_;  // per socket
  struct GroupTx {
    unsigned ifindex = 0;
    int family = 0;
    unsigned users = 0;  // sessions with group echo Probing or Active
    uint32_t seq = 0;    // the next to send
    uint64_t next_us = 0;
    bfd::EchoBurst burst;  // faster after a member missed one
    uint64_t burst_gap_us = 0;
    // Its sessions whose echo is the group echo, read and judged together a little after
    // each group echo leaves (kGroupSweepDelayUs), not each on a timer of its own.
    std::unordered_map<Id, Entry*> members;
    uint64_t sweep_us = std::numeric_limits<uint64_t>::max();
  };
  std::vector<GroupTx> group_tx_;  // per socket
  datapath::EchoTable* table_ = nullptr;
  std::vector<uint32_t> free_slots_;
  uint32_t next_slot_ = 0;
  std::map<SocketKey, size_t> socket_index_;
  std::map<SessionKey, Saved> saved_;  // from the previous agent, until resumed
  // The next transmit sequence number of a session removed at run time (link del, a device
  // gone), so that one added again over the same pair goes on inside the peer's window: a
  // fresh random start would be refused for twice the peer's detection time (seconds).
  struct Retired {
    uint32_t tx_seq = 0;
    uint64_t at_us = 0;
  };
  std::map<SessionKey, Retired> retired_;
  sd_event* loop_ = nullptr;
  sd_event_source* timer_ = nullptr;
  sd_event_source* save_timer_ = nullptr;
  bool save_pending_ = false;
  bfd::KeyRing keys_;  // empty: unauthenticated (config allowed it)
  uint8_t send_key_id_ = 0;
  std::mt19937 seq_rng_;          // every session's first transmit sequence number
  uint64_t sent_since_save_ = 0;  // signed packets sent since the state file was written
  bool clean_stop_ = false;       // forget_state(): what is saved resumes nothing
  std::array<uint64_t, kRejects> rejected_{};
  bfd::EchoKey echo_key_ = bfd::random_echo_key();  // tags our echoes; never leaves the agent
  std::array<uint64_t, kEchoRejects> echo_refused_{};
  std::map<uint8_t, uint64_t> rx_by_key_;
  uint64_t rx_unmatched_ = 0;  // from an address no session of that socket talks to
  uint64_t stalls_ = 0;        // timer wakeups so late the agent cannot have been running
};

}  // namespace mlink::agent
