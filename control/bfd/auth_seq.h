// auth_seq.h - the sequence numbers of one BFD session's authentication (RFC 5880 §6.7.3,
// §6.7.4): what the receiver accepts, kept per session.
//
// Each session numbers its own packets (bfd.XmitAuthSeq, a random start), and the receiver
// accepts only a short window above the last number it accepted (bfd.RcvAuthSeq):
//   Meticulous Keyed SHA1  RcvAuthSeq+1 .. RcvAuthSeq+3×DetectMult
//   Keyed SHA1             RcvAuthSeq   .. RcvAuthSeq+3×DetectMult
// in the circular 32-bit space, DetectMult being the received packet's field. The window is
// known (bfd.AuthSeqKnown) until no packet has been accepted for twice the detection time;
// then the next authenticated packet sets it again, which is how a peer that restarted with a
// new random sequence gets back in. The state does not depend on the session's state, so a
// recorded packet is refused in Down and Init as in Up.
#pragma once

#include <cstdint>
#include <optional>

namespace mlink::bfd {

class RxAuthSeq {
 public:
  // Would a packet numbered seq be accepted at now_us? meticulous: auth type 5.
  bool acceptable(uint32_t seq, uint8_t detect_mult, bool meticulous, uint64_t now_us) const;
  // The packet was accepted: seq is the new bfd.RcvAuthSeq, known for 2 × detect_time_us
  // from now (the session's detection time after the packet).
  void accepted(uint32_t seq, uint64_t now_us, uint64_t detect_time_us);
  // bfd.AuthSeqKnown at now_us, and bfd.RcvAuthSeq when it is.
  std::optional<uint32_t> known(uint64_t now_us) const;
  uint64_t forget_at_us() const { return forget_at_us_; }  // when known() ends
  // A restarted agent carries on with what the previous one accepted, for as long as that
  // stays known (forget_after_us from now).
  void restore(uint32_t seq, uint64_t now_us, uint64_t forget_after_us);

 private:
  bool known_ = false;
  uint32_t last_ = 0;
  uint64_t forget_at_us_ = 0;
};

}  // namespace mlink::bfd
