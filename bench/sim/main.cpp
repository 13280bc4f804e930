// mlink_sim: N simulated mlink peers × L links facing one real mlinkd (bench/sim/sim.h).
// Run it in the simulator's network namespace, whose devices <dev-prefix>0.. carry the
// simulated addresses (bench/scale_case.sh sets this up). Needs root (BPF, tc).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "sim.h"

int main(int argc, char** argv) {
  mlink::sim::Options o;
  CLI::App app{"mlink peer simulator: N nodes x L links of topology protocol and BFD"};
  app.add_option("-n,--peers", o.peers, "simulated nodes")->capture_default_str();
  app.add_option("-l,--links", o.links, "links (devices <dev-prefix>0..L-1)")
      ->capture_default_str();
  app.add_option("--dev-prefix", o.dev_prefix)->capture_default_str();
  app.add_option("--id-prefix", o.id_prefix, "node ids: <prefix>0001...")->capture_default_str();
  app.add_option("--topo-key", o.topo_key_file, "topology key file ([discovery] key_file)")
      ->required();
  app.add_option("--bfd-key", o.bfd_key_file, "BFD key file ([bfd] key_file)")->required();
  app.add_option("--port", o.topo_port, "topology protocol port")->capture_default_str();
  app.add_option("--group", o.group, "IPv4 group")->capture_default_str();
  app.add_option("--hello-ms", o.hello_ms)->capture_default_str();
  app.add_option("--links-ms", o.links_ms)->capture_default_str();
  app.add_option("--answer-spread-ms", o.answer_spread_ms,
                 "spread the answers to a new agent over this long (0: at once, as the protocol)")
      ->capture_default_str();
  app.add_flag("--seen-page", o.seen_page,
               "SEEN is a rotating page of 16 of all N+1 nodes (as on a real segment) instead "
               "of the agent alone");
  app.add_option("--interval-ms", o.interval_ms, "BFD interval")->capture_default_str();
  app.add_option("--multiplier", o.multiplier, "BFD detect multiplier")->capture_default_str();
  app.add_option("--echo-rx-ms", o.echo_rx_ms, "advertised Required Min Echo RX (0: none)")
      ->capture_default_str();
  bool fast_control = false;
  app.add_flag("--no-slow-control", fast_control,
               "keep control packets at the BFD interval while Up (default: 1 s, as an mlink "
               "peer whose echo runs)");
  bool no_reflect = false;
  app.add_flag("--no-reflect", no_reflect, "do not attach ml_ingress (no echo reflection)");
  bool no_group = false;
  app.add_flag("--no-group-echo", no_group,
               "reflect no group echo (the agent's sessions keep unicast echoes)");
  app.add_option("--control", o.control,
                 "FIFO for fault injection (silence K I | restore K I | stats)");
  app.add_option("--stats-s", o.stats_s, "counters every S seconds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.slow_control = !fast_control;
  o.reflect = !no_reflect;
  o.group_echo = !no_group;
  auto sim = mlink::sim::Sim::create(o);
  if (!sim) {
    std::fprintf(stderr, "mlink_sim: %s\n", sim.error().message.c_str());
    return 1;
  }
  return (*sim)->run();
}
