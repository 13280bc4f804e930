// netns.h - namespace fixtures for the privileged system tests.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sched.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

namespace mlink::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Moves the test process into a fresh network namespace and back. Nothing
// else holds the new one, so its devices vanish when we leave.
class PrivateNetns {
 public:
  PrivateNetns() {
    saved_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    REQUIRE(saved_ >= 0);
    if (unshare(CLONE_NEWNET) != 0) {
      ::close(saved_);
      FAIL("unshare(CLONE_NEWNET) failed");
    }
  }
  ~PrivateNetns() {
    if (setns(saved_, CLONE_NEWNET) != 0) std::perror("setns back to the original netns");
    ::close(saved_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;

 private:
  int saved_ = -1;
};

inline void sh(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system((cmd + " >/dev/null").c_str()) == 0);
}

inline std::string sh_out(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p)) out += buf;
    ::pclose(p);
  }
  return out;
}

// A named namespace for the far end of a veth pair, so that ARP/ND really
// crosses a link; named so that `ip -n` can configure it.
class PeerNetns {
 public:
  PeerNetns() {
    static int counter = 0;
    name_ = "mlt-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    sh("ip netns add " + name_);
  }
  ~PeerNetns() {
    if (std::system(("ip netns del " + name_ + " 2>/dev/null").c_str()) != 0) {
      // best effort: a destructor cannot fail the test, and the name is unique to this run
    }
  }
  PeerNetns(const PeerNetns&) = delete;
  PeerNetns& operator=(const PeerNetns&) = delete;
  const std::string& name() const { return name_; }
  void run(const std::string& cmd) { sh("ip -n " + name_ + " " + cmd); }

 private:
  std::string name_;
};

inline bool wait_until(const std::function<bool()>& done, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

// Runs fn inside the named namespace (e.g. to open a socket there; a socket
// keeps the namespace it was created in), then returns to the current one.
template <class Fn>
auto in_netns(const std::string& name, Fn&& fn) {
  int saved = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(saved >= 0);
  REQUIRE(target >= 0);
  REQUIRE(setns(target, CLONE_NEWNET) == 0);
  struct Back {
    int saved, target;
    ~Back() {
      if (setns(saved, CLONE_NEWNET) != 0) std::perror("setns back");
      ::close(saved);
      ::close(target);
    }
  } back{saved, target};
  return fn();
}

// An sd-event loop for tests that run the agent's parts on one.
struct EventLoop {
  sd_event* e = nullptr;
  EventLoop() { REQUIRE(sd_event_new(&e) >= 0); }
  ~EventLoop() { sd_event_unref(e); }
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  // Runs the loop until done() holds, at most timeout.
  bool run_until(const std::function<bool()>& done, milliseconds timeout = milliseconds(3000)) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      REQUIRE(sd_event_run(e, 20'000) >= 0);
    }
    return true;
  }
  // Runs the loop for a while: what a late datagram would do, it has done by then.
  void run_for(milliseconds t) {
    run_until([] { return false; }, t);
  }
  // A few iterations of at most 2 ms each.
  void spin(int rounds = 5) {
    for (int i = 0; i < rounds; i++) REQUIRE(sd_event_run(e, 2'000) >= 0);
  }
};

}  // namespace mlink::testing
