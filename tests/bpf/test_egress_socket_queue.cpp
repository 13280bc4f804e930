// ml_egress's socket_queue_limit (bpf/lib/socket_queue.h) acts only on a packet of a local TCP
// socket with more than the limit queued in the host. Test-run's skb belongs to a dummy socket
// that is not TCP, so here every packet must pass as without a limit; the TCP case, with real
// queues, is tests/e2e/test_socket_queue.sh.
#include <doctest/doctest.h>

#include "bpf/packets.h"

using namespace mlink::bpftest;

TEST_CASE("socket_queue_limit: a packet of no TCP socket is redirected and not counted") {
  ProgHarness dp;
  ml_peer p4 = make_peer(4, AF_INET, 3), p6 = make_peer(4, AF_INET6, 3);
  for (ml_peer* p : {&p4, &p6}) {
    spread_buckets(*p, 3);
    p->socket_queue_limit = 65536;  // the least the agent writes
  }
  dp.put_peer(peer4(), p4);
  dp.put_peer(peer6(), p6);
  for (const Fixture& fx : unicast_fixtures()) {
    CAPTURE(fx.name);
    RunResult r = dp.egress(build(fx.spec));
    REQUIRE(r.err == 0);
    CHECK(r.retval == TC_ACT_REDIRECT);
  }
  CHECK(dp.drop_counter(ML_DROP_SOCKET_QUEUE).packets == 0);
}
