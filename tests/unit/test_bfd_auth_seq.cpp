// RFC 5880 §6.7.3/§6.7.4 vectors for the receive window of a session's auth sequence
// (control/bfd/auth_seq.h): bfd.RcvAuthSeq, bfd.AuthSeqKnown and the 3 × Detect Mult window.
#include <doctest/doctest.h>

#include "bfd/auth_seq.h"

using mlink::bfd::RxAuthSeq;

namespace {
constexpr uint64_t kDetect = 90'000;  // 3 × 30 ms
}

TEST_CASE("RxAuthSeq: unknown, any number is acceptable and becomes bfd.RcvAuthSeq") {
  RxAuthSeq r;
  CHECK_FALSE(r.known(0));
  CHECK(r.acceptable(0xdeadbeef, 3, true, 0));
  r.accepted(0xdeadbeef, 0, kDetect);
  CHECK(r.known(0) == 0xdeadbeef);
}

TEST_CASE("RxAuthSeq: Meticulous accepts RcvAuthSeq+1 .. RcvAuthSeq+3×DetectMult only") {
  RxAuthSeq r;
  r.accepted(1000, 0, kDetect);
  struct V {
    uint32_t seq;
    uint8_t mult;
    bool ok;
  };
  const V vectors[] = {
      {1000, 3, false},  // the same number: a replay
      {999, 3, false},   // below
      {1001, 3, true},   // +1
      {1009, 3, true},   // +3×3
      {1010, 3, false},  // +10: past the window
      {1015, 5, true},   // +15 = 3×5: the packet's own Detect Mult sets the window
      {1016, 5, false},
      {1000 + 765, 255, true},
      {1000 + 766, 255, false},
      {1000 - 0x80000000u, 3, false},  // half the space away
      {1000 + 0x7fffffffu, 3, false},  // the old rule (anything up to 2^31 ahead) took this
  };
  for (const auto& v : vectors) {
    CAPTURE(v.seq);
    CAPTURE(int{v.mult});
    CHECK(r.acceptable(v.seq, v.mult, true, 1) == v.ok);
  }
}

TEST_CASE("RxAuthSeq: Keyed SHA1 (not meticulous) also accepts RcvAuthSeq itself") {
  RxAuthSeq r;
  r.accepted(1000, 0, kDetect);
  CHECK(r.acceptable(1000, 3, false, 1));
  CHECK(r.acceptable(1009, 3, false, 1));
  CHECK_FALSE(r.acceptable(999, 3, false, 1));
  CHECK_FALSE(r.acceptable(1010, 3, false, 1));
}

TEST_CASE("RxAuthSeq: the window is circular across 2^32") {
  RxAuthSeq r;
  r.accepted(0xfffffffe, 0, kDetect);
  CHECK(r.acceptable(0xffffffff, 3, true, 1));
  CHECK(r.acceptable(0, 3, true, 1));
  CHECK(r.acceptable(7, 3, true, 1));        // +9
  CHECK_FALSE(r.acceptable(8, 3, true, 1));  // +10
  CHECK_FALSE(r.acceptable(0xfffffffe, 3, true, 1));
}

TEST_CASE("RxAuthSeq: bfd.AuthSeqKnown ends after twice the detection time without a packet") {
  RxAuthSeq r;
  r.accepted(1000, 10'000, kDetect);
  CHECK_FALSE(r.acceptable(5000, 3, true, 10'000 + 2 * kDetect - 1));
  CHECK(r.known(10'000 + 2 * kDetect - 1));
  // A peer that restarted with a new random number gets back in.
  CHECK_FALSE(r.known(10'000 + 2 * kDetect));
  CHECK(r.acceptable(5000, 3, true, 10'000 + 2 * kDetect));
  // Each accepted packet pushes the end out.
  r.accepted(5000, 200'000, kDetect);
  r.accepted(5001, 300'000, kDetect);
  CHECK(r.known(300'000 + 2 * kDetect - 1) == 5001);
}

TEST_CASE("RxAuthSeq: restore carries on the previous agent's window for the time left") {
  RxAuthSeq r;
  r.restore(77, 1'000, 5'000);
  CHECK_FALSE(r.acceptable(77, 3, true, 2'000));
  CHECK(r.acceptable(78, 3, true, 2'000));
  CHECK(r.forget_at_us() == 6'000);
  CHECK_FALSE(r.known(6'000));
}
