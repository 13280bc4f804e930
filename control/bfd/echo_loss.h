// echo_loss.h - is a link losing packets while its BFD session stays Up?
//
// BFD declares a link down only after `multiplier` echoes in a row are lost.
// On a link that drops 30 % of its packets at random that takes about 1 s on
// average and sometimes many seconds, while every stream hashed onto the link
// keeps losing segments. The echoes' round trips give a loss figure instead:
// a link that lost kEnter or more of its last kWindow echoes is lossy and
// leaves the link set; it becomes clean again once kWindow echoes in a row
// came back. Both ends see it, since a round trip crosses both directions.
//
// An echo counts as lost once `grace` newer echoes have been sent without it
// coming back (grace = the detect multiplier: the time BFD itself would wait).
// The history outlives a session going Down and Up (no echoes are sent while
// it is Down), so a link that keeps failing on random loss is lossy again at
// its next lost echo.
#pragma once

#include <cstdint>
#include <optional>

namespace mlink::bfd {

class EchoLoss {
 public:
  static constexpr unsigned kWindow = 32;  // ~1 s of echoes at 30 ms
  static constexpr unsigned kEnter = 4;    // 12.5 %: a loaded, healthy link loses ~none

  void reset();                 // forget everything: not lossy
  void sent(uint32_t seq);      // seq = one more than the previous sent
  void received(uint32_t seq);  // a reflection came back
  // Group echo: the history as the datapath recorded it. next_seq: the next echo to send;
  // sent: echoes sent since this session counted them; bit i of rx_bits: echo last_rx_seq - i
  // came back.
  void observe(uint32_t next_seq, uint32_t sent, uint32_t last_rx_seq, uint64_t rx_bits);
  // Decides the echoes older than `grace` sends; the new state if it changed.
  std::optional<bool> update(unsigned grace);
  bool lossy() const { return lossy_; }
  unsigned lost() const { return lost_; }  // in the last decided window

 private:
  static constexpr unsigned kBits = 64;
  uint64_t got_ = 0;  // bit i: the echo sent i sends ago came back
  uint32_t next_seq_ = 0;
  unsigned sent_ = 0;  // echoes sent since reset(), at most kBits
  unsigned lost_ = 0;
  bool lossy_ = false;
};

}  // namespace mlink::bfd
