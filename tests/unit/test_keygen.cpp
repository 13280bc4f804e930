// mlinkctl keygen's lines must be what the config loader reads (issue 14).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "common/keyfile.h"
#include "common/keygen.h"
#include "config/config.h"

using namespace mlink;

namespace {

struct TempDir {
  std::filesystem::path dir;
  TempDir() {
    char tmpl[] = "/tmp/mlink-keygen-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(dir); }
  // Mode 0600, as `umask 077` in the docs leaves it.
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir / name;
    std::ofstream(p) << text;
    std::filesystem::permissions(
        p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return p.string();
  }
};

std::string generated(const KeyFileRules& rules, uint32_t id) {
  auto line = generate_key_line(rules, id);
  REQUIRE(line);
  return *line;
}

}  // namespace

TEST_CASE("key_line writes the id and lower-case hex") {
  CHECK(key_line(7, {0x00, 0xab, 0x1f}) == "7 00ab1f\n");
}

TEST_CASE("generated keys are read back by the key file parser, full length") {
  TempDir d;
  for (const auto& rules : {kBfdKeyRules, kTopoKeyRules}) {
    // Two lines appended, as in a rotation's first round.
    auto path = d.write("k", generated(rules, 1) + generated(rules, rules.max_id));
    auto keys = read_key_file(path, rules);
    REQUIRE_MESSAGE(keys, (keys ? "" : keys.error().message));
    REQUIRE(keys->size() == 2);
    CHECK(keys->at(1).size() == rules.max_len);
    CHECK(keys->at(rules.max_id).size() == rules.max_len);
    CHECK(keys->at(1) != keys->at(rules.max_id));
  }
}

TEST_CASE("generated keys differ") {
  std::set<std::string> seen;
  for (int i = 0; i < 64; i++) seen.insert(generated(kTopoKeyRules, 1));
  CHECK(seen.size() == 64);
}

TEST_CASE("a key id out of the protocol's range is refused") {
  auto bfd = generate_key_line(kBfdKeyRules, 256);
  REQUIRE_FALSE(bfd);
  CHECK(bfd.error().message == "key id must be 0..255, got 256");
  CHECK_FALSE(generate_key_line(kTopoKeyRules, 65536));
  CHECK(generate_key_line(kTopoKeyRules, 65535));
}

TEST_CASE("a config naming generated key files loads") {
  TempDir d;
  auto bfd = d.write("bfd.key", generated(kBfdKeyRules, 1));
  auto topo = d.write("topo.key", generated(kTopoKeyRules, 1));
  std::string text = "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n[bfd]\nkey_file = \"" +
                     bfd + "\"\n[discovery]\nkey_file = \"" + topo +
                     "\"\n[[link]]\ndevice = \"eth0\"\n";
  auto r = config::parse(text, (d.dir / "mlink.toml").string());
  REQUIRE_MESSAGE(r.config, (r.error ? r.error->str() : ""));
  CHECK(r.config->bfd.keys.at(1).size() == 20);
  CHECK(r.config->discovery.keys.at(1).size() == 32);
}
