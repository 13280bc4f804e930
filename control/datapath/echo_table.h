// echo_table.h - group echo's shared memory (datapath.h, EchoTable): ml_echo_tx
// and ml_echo_seen mapped into the agent (BPF_F_MMAPABLE arrays), so sending a
// group echo and reading a session's reflections cost a few memory accesses,
// not a bpf() call each.
#pragma once

#include <memory>

#include "common/result.h"
#include "datapath/datapath.h"

namespace mlink::datapath {

class MappedEchoTable final : public EchoTable {
 public:
  // tx_fd: ml_echo_tx (ML_ECHO_SOCKETS entries); seen_fd: ml_echo_seen (`slots` entries).
  static Result<std::unique_ptr<MappedEchoTable>> map(int tx_fd, int seen_fd, uint32_t slots);
  ~MappedEchoTable() override;
  MappedEchoTable(const MappedEchoTable&) = delete;
  MappedEchoTable& operator=(const MappedEchoTable&) = delete;

  uint32_t slots() const override { return slots_; }
  ml_echo_seen seen(uint32_t slot) const override;
  void clear_seen(uint32_t slot) override;
  void sent(uint32_t socket, uint32_t ifindex, uint32_t seq, uint64_t nonce) override;
  void stop(uint32_t socket) override;

 private:
  MappedEchoTable() = default;
  ml_echo_tx* tx_ = nullptr;
  size_t tx_len_ = 0;
  ml_echo_seen* seen_ = nullptr;
  size_t seen_len_ = 0;
  uint32_t slots_ = 0;
};

}  // namespace mlink::datapath
