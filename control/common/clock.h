// clock.h - CLOCK_MONOTONIC in microseconds: the time base of every timer,
// session and hold-down in the agent; and the thread's CPU time.
#pragma once

#include <time.h>

#include <cstdint>

namespace mlink {

inline uint64_t monotonic_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

// CPU time this thread has run: what an event cost the agent, preemption not counted.
inline uint64_t thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000;
}

}  // namespace mlink
