// metrics.cpp - the agent's figures as Prometheus families (metrics/exporter.h),
// built on the event loop every second. Names: `mlink_` prefix, `_total` for
// counters, base units (bytes, seconds); labels peer (ML address), link
// (device), reason. Listed in docs/OPERATIONS.md.
#include <linux/if.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "datapath/bpf_datapath.h"
#include "linkset/buckets.h"
#include "metrics/exporter.h"

namespace mlink::agent {

using metrics::Family;
using prometheus::MetricType;

Status Agent::start_metrics() {
  if (cfg_.metrics.listen.empty()) return {};
  auto e = metrics::Exporter::start(cfg_.metrics.listen);
  if (!e) return e.error();
  exporter_ = std::move(*e);
  log::info("metrics on http://{}/metrics", cfg_.metrics.listen);
  refresh_metrics();
  return {};
}

void Agent::refresh_metrics() {
  if (!exporter_) return;
  Family info("mlink_agent_info", "The agent: node id, version, mode (value 1).",
              MetricType::Gauge);
  info.add({{"node_id", cfg_.node.id},
            {"version", MLINK_VERSION},
            {"mode", cfg_.discovery.enabled ? "discovery" : "static"}},
           1);
  Family uptime("mlink_agent_uptime_seconds", "Time since the agent started.", MetricType::Gauge);
  uptime.add({}, static_cast<double>(monotonic_us() - started_us_) / 1e6);
  Family peers("mlink_peers", "Peers known (static and discovered).", MetricType::Gauge);
  peers.add({}, static_cast<double>(peers_.size()));

  Family packets("mlink_link_packets_total", "Packets the datapath sent to a peer over a link.",
                 MetricType::Counter);
  Family bytes("mlink_link_bytes_total", "Bytes the datapath sent to a peer over a link.",
               MetricType::Counter);
  Family up("mlink_link_up", "1 while the link carries the peer's traffic (datapath state).",
            MetricType::Gauge);
  Family share("mlink_link_buckets", "The link's share of the peer's 256 buckets.",
               MetricType::Gauge);
  Family session("mlink_bfd_session_up", "1 while the BFD session of (peer, link) is Up.",
                 MetricType::Gauge);
  Family rtt("mlink_bfd_echo_rtt_seconds", "Round-trip time of the last BFD echo.",
             MetricType::Gauge);
  Family loss("mlink_bfd_echo_loss_ratio", "Share of the last 32 BFD echoes that were lost.",
              MetricType::Gauge);
  Family changes("mlink_bfd_state_changes_total", "BFD session state changes of (peer, link).",
                 MetricType::Counter);
  for (const auto& [key, plan] : peers_) {
    auto st = dp_->peer_stats(plan.peer_id);
    auto w = written_.find(plan.ml_addresses.front());
    std::array<unsigned, ML_BUCKETS + 1> shares{};
    if (w != written_.end()) {
      linkset::BucketTable t;
      std::copy(std::begin(w->second.buckets), std::end(w->second.buckets), t.begin());
      auto s = linkset::share(t);
      std::copy(s.begin(), s.end(), shares.begin());
    }
    std::string peer = plan.ml_addresses.front().str();
    for (size_t s = 0; s < plan.links.size(); s++) {
      const auto& pl = plan.links[s];
      std::vector<prometheus::ClientMetric::Label> l = {{"peer", peer},
                                                        {"link", links_.at(pl.link).device}};
      ml_counter c = st ? link_counters_.total(plan.peer_id, s, slot_counters(*st)) : ml_counter{};
      packets.add(l, static_cast<double>(c.packets));
      bytes.add(l, static_cast<double>(c.bytes));
      up.add(l, w != written_.end() && w->second.slots[s].state == ML_SLOT_UP ? 1 : 0);
      share.add(l, shares[s]);
      if (!liveness_) continue;
      TargetKey tk{plan.key, pl.link, pl.nh4 ? *pl.nh4 : *pl.nh6};
      auto t = targets_.find(tk);
      if (t == targets_.end()) continue;
      session.add(l, liveness_->up(t->second) ? 1 : 0);
      rtt.add(l, static_cast<double>(liveness_->echo_rtt_us(t->second)) / 1e6);
      loss.add(l, liveness_->echo_lost(t->second) / double(bfd::EchoLoss::kWindow));
      changes.add(l, static_cast<double>(state_changes_[tk]));
    }
  }

  Family dp_drops("mlink_datapath_dropped_packets_total",
                  "Packets the egress program dropped, by reason.", MetricType::Counter);
  if (auto d = dp_->drops())
    for (unsigned r = 0; r < d->size(); r++)
      dp_drops.add({{"reason", datapath::drop_label(r)}}, static_cast<double>((*d)[r].packets));

  Family proto("mlink_protocol_dropped_packets_total",
               "Protocol packets dropped on receipt, by protocol and reason.", MetricType::Counter);
  if (discovery_) {
    auto c = discovery_->counters();
    for (size_t r = 0; r < c.rejected.size(); r++)
      proto.add({{"protocol", "topo"},
                 {"reason", std::string(topo::reason_name(static_cast<topo::Reason>(r)))}},
                static_cast<double>(c.rejected[r]));
    proto.add({{"protocol", "topo"}, {"reason", "bad_hop_limit"}},
              static_cast<double>(c.bad_hop_limit));
    proto.add({{"protocol", "topo"}, {"reason", "not_a_link"}}, static_cast<double>(c.not_a_link));
  }
  if (liveness_) {
    auto r = liveness_->rejected();
    for (size_t i = 0; i < r.size(); i++)
      proto.add(
          {{"protocol", "bfd"},
           {"reason", i == Liveness::kBadHopLimit ? "bad_hop_limit"
                                                  : bfd::to_string(static_cast<bfd::Reject>(i))}},
          static_cast<double>(r[i]));
  }
  Family clients("mlink_control_clients_dropped_total",
                 "Control socket clients cut off for falling behind.", MetricType::Counter);
  clients.add({}, ctl_ ? static_cast<double>(ctl_->clients_dropped()) : 0);

  std::vector<prometheus::MetricFamily> out;
  for (Family* f : {&info, &uptime, &peers, &packets, &bytes, &up, &share, &session, &rtt, &loss,
                    &changes, &dp_drops, &proto, &clients})
    if (auto fam = f->take(); !fam.metric.empty()) out.push_back(std::move(fam));
  exporter_->update(std::move(out));
}

}  // namespace mlink::agent
