// exporter.h - Prometheus /metrics over HTTP (prometheus-cpp's Exposer).
//
// The exposer answers scrapes on its own threads, which must never touch the
// agent's state: the agent builds the metric families on its event loop
// (every second) and hands them over here; a scrape serves the latest set.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"

namespace prometheus {
class Exposer;
}

namespace mlink::metrics {

// Builds one family: name, help, type, then a sample per label set.
class Family {
 public:
  Family(std::string name, std::string help, prometheus::MetricType type);
  Family& add(std::vector<prometheus::ClientMetric::Label> labels, double value);
  prometheus::MetricFamily take() { return std::move(f_); }

 private:
  prometheus::MetricFamily f_;
};

class Exporter {
 public:
  // listen: "IP:PORT" or "[IPv6]:PORT" (port 0: any free one).
  static Result<std::unique_ptr<Exporter>> start(const std::string& listen);
  ~Exporter();
  void update(std::vector<prometheus::MetricFamily> families);
  std::vector<int> ports() const;  // the bound ones

 private:
  struct Snapshot : prometheus::Collectable {
    std::vector<prometheus::MetricFamily> Collect() const override;
    mutable std::mutex mu;
    std::vector<prometheus::MetricFamily> families;
  };
  Exporter() = default;
  std::shared_ptr<Snapshot> snapshot_ = std::make_shared<Snapshot>();
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace mlink::metrics
