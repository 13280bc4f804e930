// metrics.cpp - the agent's figures as Prometheus families (metrics/exporter.h),
// built on the event loop when a scrape asks for them. Names: `mlink_` prefix, `_total` for
// counters, base units (bytes, seconds); labels peer (ML address), link
// (device), reason. Listed in docs/OPERATIONS.md.
#include <linux/if.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>

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
  int r =
      sd_event_add_io(loop_, nullptr, exporter_->request_fd(), EPOLLIN, on_metrics_request, this);
  if (r < 0) return os_error("metrics: watch scrape requests", r);
  log::info("metrics on http://{}/metrics", cfg_.metrics.listen);
  refresh_metrics();
  return {};
}

int Agent::on_metrics_request(sd_event_source*, int, uint32_t, void* self) {
  auto* a = static_cast<Agent*>(self);
  a->exporter_->take_request();
  a->refresh_metrics();
  return 0;
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
  peers.add({}, static_cast<double>(controller_->registry().peers().size()));
  const auto& registry = controller_->registry();
  Family limit("mlink_peers_limit", "Peers the datapath holds at most (node.max_peers).",
               MetricType::Gauge);
  limit.add({}, registry.max_peers());
  Family over("mlink_peers_over_limit",
              "Peers wanted (static or discovered) but left out: over node.max_peers.",
              MetricType::Gauge);
  over.add({}, static_cast<double>(registry.refused()));
  Family refused("mlink_peers_refused_total",
                 "Times a peer was left out (or displaced) for being over node.max_peers.",
                 MetricType::Counter);
  refused.add({}, static_cast<double>(registry.refusals()));

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
  for (const auto& ps : controller_->status()) {
    std::string peer = ps.plan->ml_addresses.front().str();
    for (const auto& ls : ps.links) {
      std::vector<prometheus::ClientMetric::Label> l = {{"peer", peer}, {"link", ls.device}};
      packets.add(l, static_cast<double>(ls.counted.packets));
      bytes.add(l, static_cast<double>(ls.counted.bytes));
      up.add(l, ls.up ? 1 : 0);
      share.add(l, ls.buckets);
      if (!ls.session) continue;
      session.add(l, ls.session->up ? 1 : 0);
      rtt.add(l, static_cast<double>(ls.session->echo_rtt_us) / 1e6);
      loss.add(l, ls.session->echo_lost / double(bfd::EchoLoss::kWindow));
      changes.add(l, static_cast<double>(ls.state_changes));
    }
  }

  Family dp_drops("mlink_datapath_dropped_packets_total",
                  "Packets the egress program dropped, by reason.", MetricType::Counter);
  if (auto d = dp_->drops())
    for (unsigned r = 0; r < d->size(); r++)
      dp_drops.add({{"reason", datapath::drop_label(r)}}, static_cast<double>((*d)[r].packets));

  Family ingress("mlink_ingress_packets_total",
                 "Link ingress, by what happened: delivered into the ML device, BFD echoes "
                 "reflected, and what the guard refused (echo_refused, hop_limit, not_a_peer, "
                 "malformed) before it reached the agent.",
                 MetricType::Counter);
  if (auto in = dp_->ingress_stats())
    for (unsigned c = 0; c < in->size(); c++)
      ingress.add({{"counter", datapath::ingress_label(c)}}, static_cast<double>((*in)[c].packets));

  Family proto("mlink_protocol_dropped_packets_total",
               "Protocol packets dropped on receipt, by protocol and reason.", MetricType::Counter);
  for (const char* protocol : {"topo", "bfd"})
    for (const auto& [reason, n] : protocol_drops(protocol))
      proto.add({{"protocol", protocol}, {"reason", reason}}, static_cast<double>(n));
  // A rotation's evidence: every peer signs with the new key once the old one's count on
  // every host stops growing (OPERATIONS.md, "Keys and rotation").
  Family by_key("mlink_protocol_authenticated_packets_total",
                "Protocol packets received that verified and were not replays, by protocol and "
                "the key id that signed them.",
                MetricType::Counter);
  Family send_key("mlink_protocol_send_key_id", "The key id this agent signs with, by protocol.",
                  MetricType::Gauge);
  if (discovery_) {
    for (const auto& [id, n] : discovery_->counters().rx_by_key)
      by_key.add({{"protocol", "topo"}, {"key_id", std::to_string(id)}}, static_cast<double>(n));
    send_key.add({{"protocol", "topo"}}, discovery_->send_key_id());
  }
  if (liveness_ && !cfg_.bfd.keys.empty()) {
    for (const auto& [id, n] : liveness_->rx_by_key())
      by_key.add({{"protocol", "bfd"}, {"key_id", std::to_string(id)}}, static_cast<double>(n));
    send_key.add({{"protocol", "bfd"}}, liveness_->send_key_id());
  }
  Family clients("mlink_control_clients_dropped_total",
                 "Control socket clients cut off for falling behind.", MetricType::Counter);
  clients.add({}, ctl_ ? static_cast<double>(ctl_->clients_dropped()) : 0);
  Family requests("mlink_control_requests_refused_total",
                  "Control requests refused: malformed, unknown command or key, wrong type, "
                  "oversize (error replied).",
                  MetricType::Counter);
  requests.add({}, ctl_ ? static_cast<double>(ctl_->requests_refused()) : 0);
  Family failed("mlink_control_requests_failed_total",
                "Control requests whose handler failed unexpectedly (a bug: logged, error "
                "replied, the agent goes on).",
                MetricType::Counter);
  failed.add({}, ctl_ ? static_cast<double>(ctl_->requests_failed()) : 0);

  std::vector<prometheus::MetricFamily> out;
  for (Family* f : {&info,  &uptime, &peers,    &limit,   &over,     &refused, &packets,  &bytes,
                    &up,    &share,  &session,  &rtt,     &loss,     &changes, &dp_drops, &ingress,
                    &proto, &by_key, &send_key, &clients, &requests, &failed})
    if (auto fam = f->take(); !fam.metric.empty()) out.push_back(std::move(fam));
  exporter_->update(std::move(out));
}

}  // namespace mlink::agent

namespace mlink::agent {

// Every reason of the protocol, counted or not (a metric that appears only
// once it is nonzero cannot be rated); discovery's are topo, sessions' bfd.
std::vector<std::pair<std::string, uint64_t>> Agent::protocol_drops(const char* protocol) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  if (std::string(protocol) == "topo" && discovery_) {
    auto c = discovery_->counters();
    for (size_t r = 0; r < c.rejected.size(); r++)
      out.emplace_back(topo::reason_name(static_cast<topo::Reason>(r)), c.rejected[r]);
    out.emplace_back("bad_hop_limit", c.bad_hop_limit);
    out.emplace_back("not_a_link", c.not_a_link);
  }
  if (std::string(protocol) == "bfd" && liveness_) {
    auto r = liveness_->rejected();
    for (size_t i = 0; i < r.size(); i++) out.emplace_back(Liveness::reject_name(i), r[i]);
    const auto& echo = liveness_->echo_refused();
    for (size_t i = 0; i < echo.size(); i++)
      out.emplace_back(bfd::to_string(static_cast<bfd::EchoReject>(i)), echo[i]);
  }
  return out;
}

// A stop reports what both protocols dropped, by reason, for the log.
void Agent::log_protocol_drops() const {
  std::string out;
  for (const char* protocol : {"topo", "bfd"})
    for (const auto& [reason, n] : protocol_drops(protocol))
      if (n) out += fmt::format(" {}.{}={}", protocol, reason, n);
  log::info("protocol packets dropped:{}", out.empty() ? " none" : out);
}

}  // namespace mlink::agent
