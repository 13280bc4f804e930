// exporter.h - Prometheus /metrics over HTTP (prometheus-cpp's Exposer).
//
// The exposer answers scrapes on its own threads, which must never touch the
// agent's state. A scrape asks the agent's event loop for fresh families
// (request_fd() becomes readable), waits for the loop to hand them over
// (update()), at most kScrapeWaitMs, and serves them; so the figures cost
// nothing while nobody scrapes (4,000 sessions: ~20 ms a build).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <condition_variable>
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
  // Readable while a scrape waits for update(); take_request() empties it.
  int request_fd() const { return snapshot_->request_fd; }
  void take_request();
  static constexpr int kScrapeWaitMs = 2000;  // then the last set is served

 private:
  struct Snapshot : prometheus::Collectable {
    std::vector<prometheus::MetricFamily> Collect() const override;
    ~Snapshot() override;
    mutable std::mutex mu;
    mutable std::condition_variable updated;
    std::vector<prometheus::MetricFamily> families;
    uint64_t generation = 0;  // update()s so far
    int request_fd = -1;      // eventfd
  };
  Exporter() = default;
  std::shared_ptr<Snapshot> snapshot_ = std::make_shared<Snapshot>();
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace mlink::metrics
