#include "metrics/exporter.h"

#include <prometheus/exposer.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
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
  std::unique_lock<std::mutex> lock(mu);
  uint64_t want = generation + 1, one = 1;
  if (write(request_fd, &one, sizeof(one)) == sizeof(one))
    updated.wait_for(lock, std::chrono::milliseconds(kScrapeWaitMs),
                     [&] { return generation >= want; });
  return families;
}

Exporter::Snapshot::~Snapshot() {
  if (request_fd >= 0) close(request_fd);
}

Result<std::unique_ptr<Exporter>> Exporter::start(const std::string& listen) {
  std::unique_ptr<Exporter> e(new Exporter());
  e->snapshot_->request_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->snapshot_->request_fd < 0) return os_error("metrics: eventfd", errno);
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
  {
    std::lock_guard<std::mutex> lock(snapshot_->mu);
    snapshot_->families = std::move(families);
    snapshot_->generation++;
  }
  snapshot_->updated.notify_all();
}

void Exporter::take_request() {
  uint64_t n = 0;
  (void)!read(snapshot_->request_fd, &n, sizeof(n));
}

std::vector<int> Exporter::ports() const {
  return exposer_->GetListeningPorts();
}

}  // namespace mlink::metrics
