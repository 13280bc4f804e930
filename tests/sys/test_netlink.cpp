// Netlink, tun and sysctl against a real kernel, each test case in a private
// network namespace that dies with it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "common/ip.h"
#include "netlink/events.h"
#include "netlink/rtnl.h"
#include "netlink/tun.h"
#include "sys/netns.h"
#include "system/sysctl.h"

namespace mlink::nl {
namespace {

using namespace mlink::testing;

// Drains events until `match` accepts one or the timeout expires.
bool wait_event(EventSocket& events, const std::function<bool(const Event&)>& match,
                milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  bool found = false;
  while (!found) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{events.fd(), POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    REQUIRE(n >= 0);
    if (n == 0) return false;
    Status st = events.read_all([&](const Event& ev) { found = found || match(ev); });
    REQUIRE_MESSAGE(st.ok(), st.error().message);
  }
  return true;
}

Rtnl open_rtnl() {
  auto r = Rtnl::open();
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  return std::move(r).value();
}

LinkInfo get_link(Rtnl& rtnl, const std::string& name) {
  auto link = rtnl.link_get(name);
  REQUIRE_MESSAGE(link.ok(), link.error().message);
  return *link;
}

Prefix prefix(const char* text) {
  return Prefix::parse(text).value();
}
IpAddr ip(const char* text) {
  return IpAddr::parse(text).value();
}

bool has_addr(Rtnl& rtnl, int ifindex, const Prefix& p) {
  auto addrs = rtnl.addr_dump(ifindex);
  REQUIRE_MESSAGE(addrs.ok(), addrs.error().message);
  for (const auto& a : *addrs) {
    CHECK(a.ifindex == ifindex);
    if (a.prefix == p) return true;
  }
  return false;
}

uint16_t neigh_state(Rtnl& rtnl, int ifindex, const IpAddr& addr) {
  auto n = rtnl.neigh_get(ifindex, addr);
  REQUIRE_MESSAGE(n.ok(), n.error().message);
  return *n ? (*n)->state : 0;
}

TEST_CASE("link_get, set up/down and mtu") {
  PrivateNetns ns;
  sh("ip link add va type veth peer name vb");
  Rtnl rtnl = open_rtnl();

  LinkInfo va = get_link(rtnl, "va");
  CHECK(va.name == "va");
  CHECK(va.ifindex > 0);
  CHECK(va.mtu == 1500);
  CHECK_FALSE((va.flags & IFF_UP));
  auto by_index = rtnl.link_get(va.ifindex);
  REQUIRE(by_index.ok());
  CHECK(by_index->name == "va");

  REQUIRE(rtnl.link_set_up(va.ifindex, true).ok());
  REQUIRE(rtnl.link_set_mtu(va.ifindex, 1400).ok());
  va = get_link(rtnl, "va");
  CHECK((va.flags & IFF_UP));
  CHECK(va.mtu == 1400);
  REQUIRE(rtnl.link_set_up(va.ifindex, false).ok());
  CHECK_FALSE((get_link(rtnl, "va").flags & IFF_UP));

  auto missing = rtnl.link_get("nosuchdev");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().err == ENODEV);
  CHECK(missing.error().message.find("nosuchdev") != std::string::npos);
  CHECK_FALSE(rtnl.link_get(va.ifindex + 1000).ok());
  Status bad_mtu = rtnl.link_set_mtu(va.ifindex, 10);
  REQUIRE_FALSE(bad_mtu.ok());
  CHECK(bad_mtu.error().err == EINVAL);
  MESSAGE("mtu 10: ", bad_mtu.error().message);
}

TEST_CASE("addresses: add, dump, delete, both families") {
  PrivateNetns ns;
  sh("ip link add va type veth peer name vb");
  Rtnl rtnl = open_rtnl();
  int va = get_link(rtnl, "va").ifindex;
  int vb = get_link(rtnl, "vb").ifindex;
  const Prefix v4 = prefix("10.88.0.1/16");
  const Prefix v6 = prefix("fd00:88::1/64");

  REQUIRE(rtnl.addr_add(va, v4).ok());
  REQUIRE(rtnl.addr_add(va, v6).ok());
  REQUIRE(rtnl.addr_add(vb, prefix("10.88.0.2/16")).ok());
  CHECK(has_addr(rtnl, va, v4));
  CHECK(has_addr(rtnl, va, v6));
  CHECK_FALSE(has_addr(rtnl, va, prefix("10.88.0.2/16")));  // vb's, filtered out
  CHECK(sh_out("ip -6 addr show dev va").find("nodad") != std::string::npos);

  Status again = rtnl.addr_add(va, v4);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().err == EEXIST);
  // The kernel's extended ACK message, if any, follows in parentheses.
  CHECK(again.error().message.rfind(
            "add address 10.88.0.1/16 to ifindex " + std::to_string(va) + ": File exists", 0) == 0);
  CHECK(rtnl.addr_add(va, v6).error().err == EEXIST);

  REQUIRE(rtnl.addr_del(va, v4).ok());
  REQUIRE(rtnl.addr_del(va, v6).ok());
  CHECK_FALSE(has_addr(rtnl, va, v4));
  CHECK_FALSE(has_addr(rtnl, va, v6));
  CHECK(rtnl.addr_del(va, v4).error().err == EADDRNOTAVAIL);
}

TEST_CASE("tun device lives exactly as long as its fd") {
  PrivateNetns ns;
  Rtnl rtnl = open_rtnl();
  int ifindex = 0;
  {
    auto tun = TunDevice::create("mlt0");
    REQUIRE_MESSAGE(tun.ok(), tun.error().message);
    CHECK(tun->name() == "mlt0");
    CHECK(tun->fd() >= 0);
    CHECK((::fcntl(tun->fd(), F_GETFL) & O_NONBLOCK));
    CHECK((::fcntl(tun->fd(), F_GETFD) & FD_CLOEXEC));
    ifindex = tun->ifindex();
    REQUIRE(rtnl.link_set_up(ifindex, true).ok());
    LinkInfo link = get_link(rtnl, "mlt0");
    CHECK(link.ifindex == ifindex);
    CHECK((link.flags & IFF_UP));
    CHECK((link.flags & IFF_LOWER_UP));  // carrier follows the open fd

    auto dup = TunDevice::create("mlt0");
    REQUIRE_FALSE(dup.ok());
    CHECK(dup.error().err == EEXIST);
    CHECK(dup.error().message.find("mlt0") != std::string::npos);

    TunDevice moved = std::move(tun).value();  // the device survives a move
    CHECK((get_link(rtnl, "mlt0").flags & IFF_LOWER_UP));
  }
  CHECK(rtnl.link_get("mlt0").error().err == ENODEV);
  CHECK(rtnl.link_get(ifindex).error().err == ENODEV);

  sh("ip link add va type veth peer name vb");
  CHECK(TunDevice::create("va").error().err == EEXIST);
  CHECK(TunDevice::create("a-name-far-too-long").error().err == EINVAL);
}

TEST_CASE("a tun outlives an agent that dies, and the next one adopts it") {
  PrivateNetns ns;
  Rtnl rtnl = open_rtnl();
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // an agent that is killed: no destructor runs
    auto tun = TunDevice::create("mlt1");
    _exit(tun.ok() ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  LinkInfo orphan = get_link(rtnl, "mlt1");
  CHECK_FALSE((orphan.flags & IFF_LOWER_UP));  // no reader: no carrier
  CHECK(TunDevice::is_tun("mlt1"));
  {
    auto tun = TunDevice::adopt("mlt1");
    REQUIRE_MESSAGE(tun.ok(), tun.error().message);
    CHECK(tun->ifindex() == orphan.ifindex);  // the same device, routes and all
    REQUIRE(rtnl.link_set_up(tun->ifindex(), true).ok());
    CHECK((get_link(rtnl, "mlt1").flags & IFF_LOWER_UP));
  }
  CHECK(rtnl.link_get("mlt1").error().err == ENODEV);  // a clean stop deletes it
  sh("ip link add va type veth peer name vb");
  CHECK_FALSE(TunDevice::is_tun("va"));
  CHECK_FALSE(TunDevice::adopt("va").ok());
}

// Two namespaces joined by a veth pair: va here (10.77.0.1, fd00:77::1) and
// vb in the peer (10.77.0.2, fd00:77::2). `setup` runs before va goes up.
struct VethToPeer {
  PeerNetns peer;
  int va = 0;

  explicit VethToPeer(Rtnl& rtnl, const std::function<void()>& setup = {}) {
    sh("ip link add va type veth peer name vb netns " + peer.name());
    peer.run("addr add 10.77.0.2/24 dev vb");
    peer.run("addr add fd00:77::2/64 dev vb nodad");
    peer.run("link set vb up");
    va = get_link(rtnl, "va").ifindex;
    // The kernel sends no neighbour solicitation before the link-local
    // address has passed DAD, which would hold up IPv6 resolution for 1-5 s.
    REQUIRE(sysctl_write("net/ipv6/conf/va/accept_dad", "0").ok());
    if (setup) setup();
    REQUIRE(rtnl.addr_add(va, prefix("10.77.0.1/24")).ok());
    REQUIRE(rtnl.addr_add(va, prefix("fd00:77::1/64")).ok());
    REQUIRE(rtnl.link_set_up(va, true).ok());
  }
};

// Waits for addr to become REACHABLE; returns how long that took.
long wait_reachable(Rtnl& rtnl, int ifindex, const IpAddr& addr, milliseconds timeout) {
  auto start = Clock::now();
  bool resolved =
      wait_until([&] { return neigh_state(rtnl, ifindex, addr) == NUD_REACHABLE; }, timeout);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  MESSAGE(addr.str(), " REACHABLE after ", took, " ms");
  REQUIRE(resolved);
  return took;
}

TEST_CASE("managed neighbour resolves by itself") {
  PrivateNetns ns;
  Rtnl rtnl = open_rtnl();
  VethToPeer link(rtnl);
  const IpAddr peer4 = ip("10.77.0.2");
  const IpAddr peer6 = ip("fd00:77::2");

  auto none = rtnl.neigh_get(link.va, peer4);
  REQUIRE_MESSAGE(none.ok(), none.error().message);
  CHECK_FALSE(none->has_value());

  for (const IpAddr& addr : {peer4, peer6}) {
    CAPTURE(addr.str());
    Status st = rtnl.neigh_add_managed(link.va, addr);
    REQUIRE_MESSAGE(st.ok(), st.error().message);
    // No packet goes to the peer: resolution is the kernel's own doing. Right
    // after link-up the first probe may be lost, and the next comes 1 s later.
    wait_reachable(rtnl, link.va, addr, milliseconds(3000));
    auto n = rtnl.neigh_get(link.va, addr);
    REQUIRE(n.ok());
    REQUIRE(n->has_value());
    CHECK((*n)->managed);
    CHECK((*n)->addr == addr);
    CHECK((*n)->ifindex == link.va);
    CHECK(sh_out("ip -d neigh show dev va to " + addr.str()).find("managed REACHABLE") !=
          std::string::npos);
    CHECK(rtnl.neigh_add_managed(link.va, addr).ok());  // replaces the entry
  }

  REQUIRE(rtnl.neigh_del(link.va, peer4).ok());
  auto gone = rtnl.neigh_get(link.va, peer4);
  REQUIRE(gone.ok());
  CHECK_FALSE(gone->has_value());
  CHECK(rtnl.neigh_del(link.va, peer4).error().err == ENOENT);
  CHECK(rtnl.neigh_get(link.va, peer6)->has_value());

  auto bad_dev = rtnl.neigh_get(link.va + 1000, peer4);
  REQUIRE_FALSE(bad_dev.ok());
  CHECK(bad_dev.error().err == ENODEV);
}

TEST_CASE("managed neighbour is re-confirmed as it ages") {
  PrivateNetns ns;
  Rtnl rtnl = open_rtnl();
  // Short reachable time, set before the entry exists (an entry's timer runs
  // on the value it was confirmed with): an unmanaged entry would soon sit in
  // STALE; a managed one goes through DELAY/PROBE back to REACHABLE by itself.
  std::optional<SysctlGuard> reach, delay;
  VethToPeer link(rtnl, [&] {
    reach.emplace(SysctlGuard::set("net/ipv4/neigh/va/base_reachable_time_ms", "200").value());
    delay.emplace(SysctlGuard::set("net/ipv4/neigh/va/delay_first_probe_time", "1").value());
  });
  const IpAddr peer4 = ip("10.77.0.2");
  REQUIRE(rtnl.neigh_add_managed(link.va, peer4).ok());
  wait_reachable(rtnl, link.va, peer4, milliseconds(3000));

  bool left_reachable = false;
  bool back_to_reachable = wait_until(
      [&] {
        uint16_t s = neigh_state(rtnl, link.va, peer4);
        INFO(nud_state_name(s));
        REQUIRE(neigh_usable(s));
        if (s != NUD_REACHABLE) left_reachable = true;
        return left_reachable && s == NUD_REACHABLE;
      },
      milliseconds(6000));
  CHECK(left_reachable);
  CHECK(back_to_reachable);
}

TEST_CASE("neigh_usable and nud_state_name") {
  CHECK(neigh_usable(NUD_REACHABLE));
  CHECK(neigh_usable(NUD_STALE));
  CHECK(neigh_usable(NUD_DELAY));
  CHECK(neigh_usable(NUD_PROBE));
  CHECK(neigh_usable(NUD_PERMANENT));
  CHECK(neigh_usable(NUD_NOARP));
  CHECK_FALSE(neigh_usable(NUD_NONE));
  CHECK_FALSE(neigh_usable(NUD_INCOMPLETE));
  CHECK_FALSE(neigh_usable(NUD_FAILED));
  CHECK(nud_state_name(NUD_NONE) == "NONE");
  CHECK(nud_state_name(NUD_REACHABLE) == "REACHABLE");
  CHECK(nud_state_name(NUD_STALE | 0x400) == "STALE|0x400");
}

TEST_CASE("events: link down and managed neighbour") {
  PrivateNetns ns;
  Rtnl rtnl = open_rtnl();
  VethToPeer link(rtnl);
  auto events = EventSocket::open();
  REQUIRE_MESSAGE(events.ok(), events.error().message);
  CHECK((::fcntl(events->fd(), F_GETFL) & O_NONBLOCK));
  REQUIRE(events->read_all([](const Event&) {}).ok());  // nothing queued: returns at once

  const IpAddr peer4 = ip("10.77.0.2");
  REQUIRE(rtnl.neigh_add_managed(link.va, peer4).ok());
  CHECK(wait_event(
      *events,
      [&](const Event& ev) {
        auto* n = std::get_if<NeighEvent>(&ev);
        return n && n->ifindex == link.va && n->addr == peer4 && !n->deleted &&
               n->state == NUD_REACHABLE;
      },
      milliseconds(3000)));

  // The agent waits for this to resolve IPv6 next hops: a link-local address
  // out of DAD (here: none needed).
  sh("ip -6 addr add fd77::1/64 dev va nodad");
  CHECK(wait_event(
      *events,
      [&](const Event& ev) {
        auto* a = std::get_if<Addr6Event>(&ev);
        return a && a->ifindex == link.va && a->addr == ip("fd77::1") && !a->deleted &&
               (a->flags & IFA_F_NODAD) && !(a->flags & IFA_F_TENTATIVE);
      },
      milliseconds(2000)));

  REQUIRE(rtnl.link_set_up(link.va, false).ok());
  CHECK(wait_event(
      *events,
      [&](const Event& ev) {
        auto* l = std::get_if<LinkEvent>(&ev);
        return l && l->ifindex == link.va && l->name == "va" && !(l->flags & IFF_UP);
      },
      milliseconds(2000)));

  sh("ip link del va");
  bool link_gone = false;
  CHECK(wait_event(
      *events,
      [&](const Event& ev) {
        if (auto* n = std::get_if<NeighEvent>(&ev))
          CHECK((n->addr.family == AF_INET || n->addr.family == AF_INET6));
        auto* l = std::get_if<LinkEvent>(&ev);
        link_gone = link_gone || (l && l->ifindex == link.va && l->deleted);
        return link_gone;
      },
      milliseconds(2000)));
}

TEST_CASE("events: overflow is reported, then reading resumes") {
  PrivateNetns ns;
  sh("ip link add va type veth peer name vb");
  Rtnl rtnl = open_rtnl();
  int va = get_link(rtnl, "va").ifindex;
  auto events = EventSocket::open();
  REQUIRE(events.ok());
  int tiny = 0;  // the kernel rounds up to its minimum, a couple of KiB
  REQUIRE(::setsockopt(events->fd(), SOL_SOCKET, SO_RCVBUFFORCE, &tiny, sizeof(tiny)) == 0);
  for (int i = 0; i < 20; i++) REQUIRE(rtnl.link_set_up(va, i % 2 == 0).ok());

  Status st = events->read_all([](const Event&) {});
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().err == ENOBUFS);
  CHECK(events->read_all([](const Event&) {}).ok());
}

TEST_CASE("sysctl read/write and SysctlGuard") {
  PrivateNetns ns;
  sh("ip link add va type veth peer name vb");
  const std::string path = "net/ipv4/conf/va/arp_announce";
  auto before = sysctl_read(path);
  REQUIRE_MESSAGE(before.ok(), before.error().message);
  CHECK(*before == "0");

  {
    auto guard = SysctlGuard::set(path, "2");
    REQUIRE_MESSAGE(guard.ok(), guard.error().message);
    CHECK(guard->old_value() == "0");
    CHECK(sysctl_read(path).value() == "2");
    SysctlGuard moved = std::move(guard).value();  // moved-from guard restores nothing
    CHECK(sysctl_read(path).value() == "2");
    // Assigning over a guard restores its own setting first.
    auto other = SysctlGuard::set("net/ipv4/conf/vb/arp_announce", "1");
    REQUIRE(other.ok());
    other.value() = std::move(moved);
    CHECK(sysctl_read("net/ipv4/conf/vb/arp_announce").value() == "0");
    CHECK(sysctl_read(path).value() == "2");
  }
  CHECK(sysctl_read(path).value() == "0");

  REQUIRE(sysctl_write(path, "1").ok());
  CHECK(sysctl_read(path).value() == "1");
  Status bad = sysctl_write(path, "banana");
  CHECK_FALSE(bad.ok());
  auto missing = sysctl_read("net/ipv4/conf/nosuchdev/arp_announce");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().err == ENOENT);
  CHECK(missing.error().message.find("nosuchdev") != std::string::npos);
  CHECK_FALSE(SysctlGuard::set("net/ipv4/conf/nosuchdev/arp_announce", "1").ok());
}

}  // namespace
}  // namespace mlink::nl
