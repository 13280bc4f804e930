#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "agent/reload_plan.h"

using namespace mlink;
using namespace mlink::agent;

namespace {

Prefix pfx(const std::string& s) {
  return *Prefix::parse(s);
}

config::Config parse(const std::string& text) {
  auto r = config::parse(text, "t.toml");
  REQUIRE_MESSAGE(r.config, (r.error ? r.error->str() : ""));
  return *r.config;
}

const std::string kNode =
    "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n[bfd]\nenabled = false\n";

const std::string kRunning = kNode +
                             "[[link]]\ndevice = \"eth0\"\n"
                             "[[link]]\ndevice = \"eth1\"\n"
                             "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                             "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] },\n"
                             "       { device = \"eth1\", address = [\"10.1.0.2\"] }]\n";

Links running_links() {
  Links l;
  l.emplace(0, LocalLink{"eth0", 10, {pfx("10.0.0.1/16")}, 0, 1, false, true});  // drained
  l.emplace(1, LocalLink{"eth1", 11, {pfx("10.1.0.1/16")}});
  return l;
}

Result<LocalLink> read_link(const std::string& dev) {
  if (dev == "eth2") return LocalLink{"eth2", 12, {pfx("10.2.0.1/16")}};
  return Error{"device " + dev + ": no such device"};
}

bool exists(const std::string& dev) {
  return dev.rfind("eth", 0) == 0 && dev != "eth7";
}

}  // namespace

TEST_CASE("reload plan: links kept by id, added, removed; peers added; policy changed") {
  auto next = parse(kNode +
                    "[[link]]\ndevice = \"eth0\"\nweight = 3\n"
                    "[[link]]\ndevice = \"eth2\"\n"
                    "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                    "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n"
                    "[[peer]]\nml_address = [\"10.88.0.3\"]\n"
                    "via = [{ device = \"eth2\", address = [\"10.2.0.3\"] }]\n");
  auto r = plan_reload(parse(kRunning), running_links(), 2, next, read_link, exists);
  REQUIRE(std::holds_alternative<ReloadPlan>(r));
  const auto& plan = std::get<ReloadPlan>(r);
  REQUIRE(plan.links.size() == 2);
  CHECK(plan.links.at(0).device == "eth0");
  CHECK(plan.links.at(0).weight == 3);
  CHECK(plan.links.at(0).drain);  // maintenance survives a reload
  CHECK(plan.links.at(2).device == "eth2");
  CHECK(plan.links.at(2).ifindex == 12);
  CHECK(plan.changes.dump() ==
        R"([{"change":"policy","from":{"backup":false,"drain":true,"weight":1},"link":"eth0",)"
        R"("to":{"backup":false,"drain":true,"weight":3}},{"change":"added","link":"eth2"},)"
        R"({"change":"removed","link":"eth1"},{"change":"added","peer":"10.88.0.3"}])");
}

TEST_CASE("reload plan: nothing changed, nothing to do") {
  auto r = plan_reload(parse(kRunning), running_links(), 2, parse(kRunning), read_link, exists);
  REQUIRE(std::holds_alternative<ReloadPlan>(r));
  CHECK(std::get<ReloadPlan>(r).changes.empty());
  CHECK(std::get<ReloadPlan>(r).links.size() == 2);
}

TEST_CASE("reload plan: refusals name file, line and key") {
  auto refuse = [](const std::string& text) {
    auto r = plan_reload(parse(kRunning), running_links(), 2, parse(text), read_link, exists);
    REQUIRE(std::holds_alternative<config::ConfigError>(r));
    return std::get<config::ConfigError>(r);
  };
  SUBCASE("a restart-only key") {
    auto e = refuse(
        "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\nml_device = \"ml7\"\n"
        "[bfd]\nenabled = false\n[[link]]\ndevice = \"eth0\"\n");
    CHECK(e.file == "t.toml");
    CHECK(e.key == "node.ml_device");
    CHECK(e.line == 1);
  }
  SUBCASE("a device that does not exist") {
    auto e = refuse(kRunning + "[[link]]\ndevice = \"eth7\"\n");
    CHECK(e.key == "link[2].device");
    CHECK(e.line == 14);
  }
  SUBCASE("a new link the kernel cannot read") {
    auto e = refuse(kRunning + "[[link]]\ndevice = \"eth3\"\n");
    CHECK(e.key == "link[2].device");
    CHECK(e.message.find("no such device") != std::string::npos);
  }
  SUBCASE("a next hop in no subnet of its link") {
    auto e = refuse(kNode +
                    "[[link]]\ndevice = \"eth0\"\n"
                    "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                    "via = [{ device = \"eth0\", address = [\"10.9.0.2\"] }]\n");
    CHECK(e.key == "peer[0].via[0].address[0]");
    CHECK(e.line == 10);
  }
}

TEST_CASE("reload plan: a key rotation is reported by key id, never by key bytes") {
  char dir[] = "/tmp/mlink-rplan-XXXXXX";
  REQUIRE(mkdtemp(dir));
  auto write = [&](const std::string& name, const std::string& text) {
    std::string p = std::string(dir) + "/" + name;
    FILE* f = std::fopen(p.c_str(), "w");
    REQUIRE(f);
    std::fputs(text.c_str(), f);
    std::fclose(f);
    chmod(p.c_str(), 0600);
    return p;
  };
  auto old_key = write("old.key", "1 00ff\n");
  auto both = write("both.key", "1 00ff\n2 aabb\n");
  const std::string links = "[[link]]\ndevice = \"eth0\"\n[[link]]\ndevice = \"eth1\"\n";
  const std::string node = "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n";
  auto running = parse(node + "[bfd]\nkey_file = \"" + old_key + "\"\n" + links);
  auto next = parse(node + "[bfd]\nkey_file = \"" + both + "\"\nsend_key_id = 1\n" + links);
  auto r = plan_reload(running, running_links(), 2, next, read_link, exists);
  REQUIRE(std::holds_alternative<ReloadPlan>(r));
  CHECK(std::get<ReloadPlan>(r).changes.dump() ==
        R"([{"bfd":"keys","change":"keys","from":{"key_ids":[1],"send_key_id":1},)"
        R"("to":{"key_ids":[1,2],"send_key_id":1}}])");
  auto moved = parse(node + "[bfd]\nkey_file = \"" + both + "\"\n" + links);  // 2 signs now
  r = plan_reload(next, running_links(), 2, moved, read_link, exists);
  REQUIRE(std::holds_alternative<ReloadPlan>(r));
  CHECK(std::get<ReloadPlan>(r).changes.dump().find(R"("to":{"key_ids":[1,2],"send_key_id":2})") !=
        std::string::npos);
  for (const char* f : {"old.key", "both.key"}) std::remove((std::string(dir) + "/" + f).c_str());
  rmdir(dir);
}

TEST_CASE("reload plan: the node's spreading keys change without a restart") {
  auto next = kRunning;
  next.insert(next.find("[bfd]"), "spread = \"flowlet\"\nsocket_queue_limit = 131072\n");
  auto r = plan_reload(parse(kRunning), running_links(), 2, parse(next), read_link, exists);
  REQUIRE(std::holds_alternative<ReloadPlan>(r));
  CHECK(std::get<ReloadPlan>(r).changes.dump() ==
        R"([{"change":"flowlet","node":"spread"},{"change":131072,"node":"socket_queue_limit"}])");
}
