// fuzz_discovery_deliver - the topology receive path (Discovery::deliver):
// decode, replay guard, neighbour table, answers, change reports, for a
// sequence of datagrams from a few senders on two links. Each input is split
// at "\n--\n" into up to 16 datagrams, each re-signed with the test key (so
// they reach what lies behind the MAC) and delivered 100 ms apart from a
// source and link picked by its first byte. Nothing may crash, leak or
// overflow, and no answer may be longer than a packet.
// seeds: proto/vectors/topo
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

#include "discovery/discovery.h"
#include "fuzz/topo_resign.h"

using namespace mlink;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_discovery_deliver: %s\n", what);
  std::abort();
}

std::unique_ptr<discovery::Discovery> make(const topo::Key& key) {
  discovery::Options o;
  o.cfg.enabled = true;
  o.cfg.port = 0;  // ephemeral: nothing is sent (no loop attached) and nothing collides
  o.cfg.keys = {{key.id, std::vector<uint8_t>(key.bytes.begin(), key.bytes.end())}};
  o.node_id = "fuzz-self";
  o.ml_addrs = {*Prefix::parse("10.88.0.1/16")};
  for (size_t i = 0; i < 2; i++) {
    discovery::ProtocolLink l;
    l.device = "lo";
    l.ifindex = 1 + static_cast<int>(i);  // 2: not joined, still a link to the engine
    l.addresses = {*Prefix::parse(i ? "10.1.0.1/16" : "10.0.0.1/16")};
    o.links.emplace(i, l);
  }
  auto d = discovery::Discovery::create(std::move(o), [](const std::vector<std::string>&) {});
  if (!d) fail(d.error().message.c_str());
  return std::move(*d);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const topo::Key key = fuzzing::topo_test_key();
  auto d = make(key);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  uint64_t now = uint64_t{1} << 40;
  for (int n = 0; n < 16 && !in.empty(); n++) {
    size_t cut = in.find("\n--\n");
    std::string_view one = in.substr(0, cut);
    in = cut == std::string_view::npos ? std::string_view{} : in.substr(cut + 4);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(one.data()), one.size());
    discovery::Received r;
    auto signed_bytes = fuzzing::topo_resign(bytes, key);
    r.bytes = signed_bytes.empty() ? std::vector<uint8_t>(bytes.begin(), bytes.end())
                                   : std::move(signed_bytes);
    uint8_t pick = one.empty() ? 0 : static_cast<uint8_t>(one[0]);
    r.ifindex = 1 + (pick & 1);
    r.src = *IpAddr::parse((pick & 2) ? "10.1.0.7" : "10.0.0.9");
    d->deliver(r, now);
    now += 100'000;
    for (const auto& o : d->take_queued())
      if (o.bytes.size() > topo::kMaxPacket) fail("an answer longer than a packet");
  }
  return 0;
}
