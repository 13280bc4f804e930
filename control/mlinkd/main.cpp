// mlinkd - the mlink agent. Static mode: runs in the foreground from a TOML
// config; --check validates the config against this host and exits;
// --cleanup removes what a dead agent of the config's node id left behind.
// Exit codes (docs/OPERATIONS.md, "Exit status"): 0 clean stop or a valid
// --check, 1 runtime failure, 2 configuration or usage error.
#include <net/if.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <string>

#include "agent/agent.h"
#include "common/log.h"
#include "config/config.h"

namespace {

using mlink::log::Level;

Level parse_level(const std::string& s) {
  if (s == "debug") return Level::Debug;
  if (s == "warning") return Level::Warning;
  if (s == "error") return Level::Error;
  return Level::Info;
}

// Everything that can be checked without changing the system.
std::optional<mlink::config::Config> load_checked(const std::string& path) {
  auto r = mlink::config::load(path);
  if (r.error) {
    mlink::log::error("{}", r.error->str());
    return std::nullopt;
  }
  auto exists = [](const std::string& dev) { return if_nametoindex(dev.c_str()) != 0; };
  if (auto e = mlink::config::check_devices(*r.config, exists)) {
    mlink::log::error("{}", e->str());
    return std::nullopt;
  }
  return r.config;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mlinkd: multi-link load balancing agent"};
  std::string config_path, level = "info";
  bool check = false, cleanup = false;
  app.add_option("-c,--config", config_path, "configuration file (TOML)")->required();
  auto* check_flag = app.add_flag("--check", check, "validate the configuration and exit");
  app.add_flag("--cleanup", cleanup,
               "remove what a dead agent of this node id left behind (ml0, programs, pins, "
               "managed neighbours, sysctl changes, BFD state) and exit; refused while one runs")
      ->excludes(check_flag);
  app.add_option("--log-level", level, "debug, info, warning or error")
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  app.set_version_flag("--version", MLINK_VERSION);
  app.footer(
      "Exit status: 0 stopped cleanly (SIGTERM/SIGINT), --check found the configuration "
      "valid, or --cleanup is done; 1 runtime failure (setting up or running: what was applied "
      "is undone; --cleanup: it failed, or an agent of the node id runs); 2 "
      "configuration or usage error (bad command line, or a configuration that does not load "
      "or does not fit this host; nothing is changed). Errors go to stderr.");
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    return "mlinkd: " + CLI::FailureMessage::simple(a, e);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print to stdout (exit 0); a usage error prints
    // CLI11's message to stderr and exits 2, as a configuration error does.
    return app.exit(e) == 0 ? 0 : 2;
  }

  mlink::log::set_level(parse_level(level));
  if (cleanup) {
    // Not load_checked(): a link that is gone is no reason to leave the rest.
    auto r = mlink::config::load(config_path);
    if (r.error) {
      mlink::log::error("{}", r.error->str());
      return 2;
    }
    mlink::log::set_tag("mlinkd[" + r.config->node.id + "]");
    if (auto s = mlink::agent::Agent::cleanup(std::move(*r.config)); !s) {
      mlink::log::error("cleanup: {}", s.error().message);
      return 1;
    }
    return 0;
  }
  auto cfg = load_checked(config_path);
  if (!cfg) return 2;
  mlink::log::set_tag("mlinkd[" + cfg->node.id + "]");
  auto agent = mlink::agent::Agent::prepare(std::move(*cfg));
  if (!agent) {
    mlink::log::error("{}", agent.error().message);
    return 2;
  }
  if (check) {
    mlink::log::info("configuration {} is valid for this host", config_path);
    return 0;
  }
  // Held until the event loop takes them, so a stop request during apply()
  // still ends in a clean teardown instead of leaving half a setup behind.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop, sig);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  if (auto s = (*agent)->apply(); !s) {
    mlink::log::error("{}", s.error().message);
    return 1;  // the agent's destructor undoes what was applied
  }
  if (auto s = (*agent)->run(); !s) {
    mlink::log::error("{}", s.error().message);
    return 1;
  }
  return 0;
}
