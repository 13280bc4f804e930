#include "metrics/exporter.h"

#include <prometheus/exposer.h>

#include <exception>

namespace mlink::metrics {

Family::Family(std::string name, std::string help, prometheus::MetricType type) {
  f_.name = std::move(name);
  f_.help = std::move(help);
  f_.type = type;
}

Family& Family::add(std::vector<prometheus::ClientMetric::Label> labels, double value) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f_.type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f_.metric.push_back(std::move(m));
  return *this;
}

std::vector<prometheus::MetricFamily> Exporter::Snapshot::Collect() const {
  std::lock_guard<std::mutex> lock(mu);
  return families;
}

Result<std::unique_ptr<Exporter>> Exporter::start(const std::string& listen) {
  std::unique_ptr<Exporter> e(new Exporter());
  try {  // civetweb reports a failed bind by throwing
    e->exposer_ = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
  } catch (const std::exception& ex) {
    return Error{"metrics: listen on " + listen + ": " + ex.what()};
  }
  e->exposer_->RegisterCollectable(e->snapshot_);
  return e;
}

Exporter::~Exporter() = default;

void Exporter::update(std::vector<prometheus::MetricFamily> families) {
  std::lock_guard<std::mutex> lock(snapshot_->mu);
  snapshot_->families = std::move(families);
}

std::vector<int> Exporter::ports() const {
  return exposer_->GetListeningPorts();
}

}  // namespace mlink::metrics
