// reload_plan.h - what a reload changes, decided before anything is touched.
//
// A pure function of the running config and links and the new config (the
// kernel is asked only through the two callbacks): either the links to run
// and the list of changes, or the first error as file:line:key, in which case
// the agent keeps running on the config it has.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "agent/topology.h"
#include "common/result.h"
#include "config/config.h"

namespace mlink::agent {

struct ReloadPlan {
  // The file decides which links run and their weight and role; a link that
  // stays keeps its id, addresses and drain (drain is maintenance, not config).
  Links links;
  nlohmann::json changes = nlohmann::json::array();  // what `mlinkctl reload` reports
};

using ReadLink = std::function<Result<LocalLink>(const std::string& device)>;

// New links get ids from next_link_id on.
std::variant<ReloadPlan, config::ConfigError> plan_reload(const config::Config& running,
                                                          const Links& links, size_t next_link_id,
                                                          const config::Config& next,
                                                          const ReadLink& read_link,
                                                          const config::DeviceExists& exists);

nlohmann::json policy_json(const LocalLink& l);

}  // namespace mlink::agent
