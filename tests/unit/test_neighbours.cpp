// ManagedNeighbours against the in-memory neighbour table of fakes.h.
#include <doctest/doctest.h>

#include "agent/neighbours.h"
#include "fakes.h"

using namespace mlink;

namespace {
agent::NeighKey key(int ifindex, const char* a) {
  return {ifindex, *IpAddr::parse(a)};
}
}  // namespace

TEST_CASE("neighbours: a resync reads the table with one dump and re-adds what was deleted") {
  testing::FakeNeighbours table;
  std::set<agent::NeighKey> want;
  for (int i = 0; i < 1000; i++)
    want.insert(
        key(2 + i % 4,
            ("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2)).c_str()));
  {
    agent::ManagedNeighbours n(table);
    n.sync(want);
    CHECK(table.table.size() == 1000);
    table.table.erase(key(2, "10.0.0.2"));  // `ip neigh flush` of one
    table.table[key(3, "10.0.0.3")] = NUD_FAILED;
    table.log.clear();
    n.resync();
    CHECK(table.dumps == 1);  // not a request per entry
    CHECK(table.log == std::vector<std::string>{"add 10.0.0.2@2"});
    CHECK(n.usable(key(2, "10.0.0.2")));
    CHECK_FALSE(n.usable(key(3, "10.0.0.3")));
  }
  CHECK(table.table.empty());  // it deletes what it added when it goes
}
