#include "datapath/echo_table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace mlink::datapath {
namespace {

size_t page_rounded(size_t bytes) {
  auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

Result<void*> map_fd(int fd, size_t len, const char* name) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return os_error(std::string("mmap ") + name, errno);
  return p;
}

}  // namespace

Result<std::unique_ptr<MappedEchoTable>> MappedEchoTable::map(int tx_fd, int seen_fd,
                                                              uint32_t slots) {
  std::unique_ptr<MappedEchoTable> t(new MappedEchoTable());
  t->tx_len_ = page_rounded(sizeof(ml_echo_tx) * ML_ECHO_SOCKETS);
  auto tx = map_fd(tx_fd, t->tx_len_, "ml_echo_tx");
  if (!tx) return tx.error();
  t->tx_ = static_cast<ml_echo_tx*>(*tx);
  t->seen_len_ = page_rounded(sizeof(ml_echo_seen) * slots);
  auto seen = map_fd(seen_fd, t->seen_len_, "ml_echo_seen");
  if (!seen) return seen.error();
  t->seen_ = static_cast<ml_echo_seen*>(*seen);
  t->slots_ = slots;
  // A dead agent's echoes: their nonces are unknown to this one, nothing may match them.
  for (uint32_t s = 0; s < ML_ECHO_SOCKETS; s++) t->stop(s);
  return t;
}

MappedEchoTable::~MappedEchoTable() {
  if (tx_) munmap(tx_, tx_len_);
  if (seen_) munmap(seen_, seen_len_);
}

// The kernel writes a slot while we read it; a torn copy is at worst one
// reflection late (the next read sees it whole).
ml_echo_seen MappedEchoTable::seen(uint32_t slot) const {
  if (slot >= slots_) return {};
  ml_echo_seen s;
  const volatile ml_echo_seen* p = &seen_[slot];
  s.count = p->count;
  std::atomic_thread_fence(std::memory_order_acquire);
  s.last_ns = p->last_ns;
  s.bits = p->bits;
  s.seq = p->seq;
  s.rtt_us = p->rtt_us;
  return s;
}

void MappedEchoTable::clear_seen(uint32_t slot) {
  if (slot < slots_) seen_[slot] = ml_echo_seen{};
}

// The entry is written before the echo leaves, so its reflection always finds it.
void MappedEchoTable::sent(uint32_t socket, uint32_t ifindex, uint32_t seq, uint64_t nonce) {
  if (socket >= ML_ECHO_SOCKETS) return;
  ml_echo_tx& tx = tx_[socket];
  ml_echo_sent& e = tx.ring[seq & (ML_ECHO_RING - 1)];
  e.seq = seq;
  e.nonce = nonce;
  tx.ifindex = ifindex;
  std::atomic_thread_fence(std::memory_order_release);
}

void MappedEchoTable::stop(uint32_t socket) {
  if (socket >= ML_ECHO_SOCKETS) return;
  tx_[socket] = ml_echo_tx{};
}

}  // namespace mlink::datapath
