// liveness_test_hooks.cpp - Liveness driven without a loop, for tests and the fuzzer of its
// receive path (fuzz/fuzz_liveness_deliver.cpp): deliver a datagram, run the timer's work at
// a given time, take what was queued to send.
#include "agent/liveness.h"

namespace mlink::agent {

bool Liveness::test_deliver(Id via, std::span<const uint8_t> bytes, const IpAddr& src,
                            uint64_t now_us, bool echo) {
  auto it = entries_.find(via);
  if (it == entries_.end()) return false;
  if (!echo) {
    deliver(it->second.socket, bytes, src, now_us);
    return true;
  }
  BatchReceiver::Datagram d;
  d.meta.size = bytes.size();
  d.meta.src = src;
  d.bytes = bytes;
  echo_back(it->second.socket, d, now_us);
  return true;
}

void Liveness::test_run_timer(uint64_t now_us) {
  run_due(now_us);
  send_group_due(now_us);
  sweep_group_due(now_us);
}

std::vector<Liveness::Outgoing> Liveness::test_take_queued() {
  std::vector<Outgoing> out;
  for (bool echo : {false, true})
    for (auto& q : echo ? echo_tx_ : ctl_tx_) {
      for (const auto& [dst, b] : q)
        out.push_back({echo, dst, std::vector<uint8_t>(b.data.begin(), b.data.begin() + b.size)});
      q.clear();
    }
  return out;
}

std::optional<uint32_t> Liveness::test_group_seq(Id via) const {
  auto it = entries_.find(via);
  if (it == entries_.end() || it->second.socket >= group_tx_.size()) return std::nullopt;
  return group_tx_[it->second.socket].seq;
}

}  // namespace mlink::agent
