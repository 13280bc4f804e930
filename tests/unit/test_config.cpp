#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "config/config.h"

using namespace mlink::config;
using mlink::IpAddr;
using mlink::Prefix;

namespace {

// Lines 1-3.
const std::string kNode =
    "[node]\n"
    "id = \"a\"\n"
    "ml_address = [\"10.88.0.1/16\", \"fd88::1/64\"]\n";
// Lines 4-7 after kNode; whatever a test appends starts at line 8.
const std::string kLinks =
    "[[link]]\n"
    "device = \"eth0\"\n"
    "[[link]]\n"
    "device = \"eth1\"\n";
const std::string kBase = kNode + kLinks;

std::string example(const char* name) {
  auto root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  return (root / "docs" / "examples" / name).string();
}

// BFD must be authenticated unless the config allows otherwise; tests not
// about BFD allow it at the end, where it moves no line number.
std::string with_bfd(const std::string& text) {
  return text.find("[bfd]") == std::string::npos ? text + "\n[bfd]\nallow_unauthenticated = true\n"
                                                 : text;
}

Config config_of(const std::string& text) {
  LoadResult r = parse(with_bfd(text), "t.toml");
  INFO(text);
  INFO((r.error ? r.error->str() : std::string()));
  REQUIRE_FALSE(r.error);
  REQUIRE(r.config);
  return *r.config;
}

ConfigError error_of(const std::string& text) {
  LoadResult r = parse(with_bfd(text), "t.toml");
  INFO(text);
  REQUIRE_FALSE(r.config);
  REQUIRE(r.error);
  CHECK(r.error->file == "t.toml");
  CHECK_FALSE(r.error->message.empty());
  return *r.error;
}

bool mentions(const ConfigError& e, const std::string& part) {
  INFO(e.str());
  return e.message.find(part) != std::string::npos;
}

}  // namespace

// A key file with mode 0600 in a fresh temporary directory.
struct KeyDir {
  std::filesystem::path dir;
  KeyDir() {
    char tmpl[] = "/tmp/mlink-keys-XXXXXX";
    dir = mkdtemp(tmpl);
  }
  ~KeyDir() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text,
                    std::filesystem::perms mode = std::filesystem::perms::owner_read |
                                                  std::filesystem::perms::owner_write) {
    auto p = dir / name;
    std::ofstream(p) << text;
    std::filesystem::permissions(p, mode);
    return p.string();
  }
};

const std::string kTopoKey = "1 " + std::string(64, 'a') + "\n";

TEST_CASE("the example configs load") {
  KeyDir keys;
  keys.write("bfd.key", "1 0102030405\n");
  keys.write("topo.key", kTopoKey);
  for (const char* host : {"a.toml", "b.toml"}) {
    std::ifstream in(example(host));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    for (size_t at; (at = text.find("/etc/mlink/")) != std::string::npos;)
      text.replace(at, 11, keys.dir.string() + "/");
    LoadResult r = parse(text, host);
    INFO((r.error ? r.error->str() : std::string()));
    REQUIRE(r.config);
    const Config& c = *r.config;
    bool a = std::string(host) == "a.toml";
    CHECK(c.node.id == (a ? "a" : "b"));
    REQUIRE(c.node.ml_address.size() == 2);
    CHECK(c.node.ml_address[0] == *Prefix::parse(a ? "10.88.0.1/16" : "10.88.0.2/16"));
    CHECK(c.node.ml_address[1] == *Prefix::parse(a ? "fd88::1/64" : "fd88::2/64"));
    REQUIRE(c.links.size() == 3);
    CHECK(c.links[2].device == "eth2");
    CHECK_FALSE(c.links[2].backup);  // shown commented out in the example
    CHECK(c.peers.empty());          // discovered
    CHECK(c.discovery.enabled);
    CHECK(c.discovery.keys.at(1).size() == 32);
    CHECK(c.bfd.keys.at(1) == std::vector<uint8_t>{1, 2, 3, 4, 5});
    CHECK_FALSE(check_devices(c, [](const std::string&) { return true; }));
  }
  LoadResult r = load(example("static.toml"));
  INFO((r.error ? r.error->str() : std::string()));
  REQUIRE(r.config);
  const Config& c = *r.config;
  CHECK_FALSE(c.discovery.enabled);
  CHECK(c.bfd.allow_unauthenticated);
  REQUIRE(c.peers.size() == 1);
  CHECK(c.peers[0].ml_address[0] == *IpAddr::parse("10.88.0.2"));
  REQUIRE(c.peers[0].via.size() == 3);
  CHECK(c.peers[0].via[1].device == "eth1");
  CHECK(c.peers[0].via[1].address[1] == *IpAddr::parse("fd00:0:0:1::2"));
}

TEST_CASE("BFD is authenticated unless the config says otherwise") {
  KeyDir keys;
  auto bfd_key = keys.write("bfd.key", "# rotation: both ids accepted, 7 signs\n3 00ff\n7 " +
                                           std::string(40, 'e') + "\n");
  // Nothing said: an error naming the missing key.
  LoadResult none = parse(kBase, "t.toml");
  REQUIRE(none.error);
  CHECK(none.error->key == "bfd.key_file");
  CHECK(mentions(*none.error, "allow_unauthenticated"));
  Config c = config_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\n");
  CHECK(c.bfd.keys.size() == 2);
  CHECK(c.bfd.keys.at(7).size() == 20);
  CHECK_FALSE(c.bfd.allow_unauthenticated);
  CHECK(config_of(kBase + "[bfd]\nallow_unauthenticated = true\n").bfd.keys.empty());
  auto both =
      error_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\nallow_unauthenticated = true\n");
  CHECK(both.key == "bfd.allow_unauthenticated");
  CHECK(both.line == 10);
  // Disabled BFD needs no key.
  CHECK_FALSE(config_of(kBase + "[bfd]\nenabled = false\n").bfd.enabled);
}

TEST_CASE("a bad key file is a config error naming the config key and the file's line") {
  KeyDir keys;
  struct Case {
    const char* text;
    const char* says;
  } cases[] = {
      {"", "no key"},
      {"1\n", "expected"},
      {"1 0g\n", "not hexadecimal"},
      {"1 abc\n", "odd number"},
      {"256 00\n", "key id must be 0..255"},
      {"x 00\n", "key id"},
      {"1 00\n1 01\n", "duplicate key id 1"},
      {"1 "
       "0011223344556677889900112233445566778899aa\n",
       "1..20 bytes, got 21"},
      {"1 00 junk\n", "unexpected"},
  };
  for (const auto& k : cases) {
    auto path = keys.write("bfd.key", k.text);
    auto e = error_of(kBase + "[bfd]\nkey_file = \"" + path + "\"\n");
    CHECK(e.key == "bfd.key_file");
    CHECK(e.line == 9);
    CHECK(mentions(e, k.says));
    CHECK(mentions(e, path));
  }
  auto open = keys.write("open.key", "1 00\n",
                         std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                             std::filesystem::perms::others_read);
  CHECK(mentions(error_of(kBase + "[bfd]\nkey_file = \"" + open + "\"\n"), "chmod 600"));
  CHECK(mentions(error_of(kBase + "[bfd]\nkey_file = \"/nonexistent/k\"\n"), "/nonexistent/k"));
  // A relative path is relative to the config file.
  keys.write("rel.key", "2 01\n");
  LoadResult r = parse(kBase + "[bfd]\nkey_file = \"rel.key\"\n", (keys.dir / "t.toml").string());
  INFO((r.error ? r.error->str() : std::string()));
  REQUIRE(r.config);
  CHECK(r.config->bfd.keys.count(2));
}

TEST_CASE("the [discovery] table") {
  KeyDir keys;
  auto topo_key = keys.write("topo.key", kTopoKey);
  Config off = config_of(kBase);
  CHECK_FALSE(off.discovery.enabled);
  Config c = config_of(kBase + "[discovery]\nkey_file = \"" + topo_key + "\"\n");
  CHECK(c.discovery.enabled);
  CHECK(c.discovery.port == 28012);
  CHECK(c.discovery.group4 == *IpAddr::parse("224.0.0.200"));
  CHECK(c.discovery.group6 == *IpAddr::parse("ff02::6d6c"));
  CHECK(c.discovery.hello_interval_ms == 1000);
  CHECK(c.discovery.line == 8);
  Config set = config_of(kBase + "[discovery]\nkey_file = \"" + topo_key +
                         "\"\nport = 4000\ngroup4 = \"224.0.0.251\"\ngroup6 = \"ff02::fb\"\n"
                         "hello_interval_ms = 250\n");
  CHECK(set.discovery.port == 4000);
  CHECK(set.discovery.group4 == *IpAddr::parse("224.0.0.251"));
  CHECK(set.discovery.group6 == *IpAddr::parse("ff02::fb"));
  CHECK(set.discovery.hello_interval_ms == 250);
  auto missing = error_of(kBase + "[discovery]\nport = 4000\n");
  CHECK(missing.key == "discovery.key_file");
  CHECK(missing.line == 8);
  auto g4 =
      error_of(kBase + "[discovery]\nkey_file = \"" + topo_key + "\"\ngroup4 = \"239.1.1.1\"\n");
  CHECK(g4.key == "discovery.group4");
  CHECK(g4.line == 10);
  CHECK(error_of(kBase + "[discovery]\nkey_file = \"" + topo_key + "\"\ngroup6 = \"ff05::1\"\n")
            .key == "discovery.group6");
  CHECK(error_of(kBase + "[discovery]\nkey_file = \"" + topo_key + "\"\nhello_interval_ms = 50\n")
            .key == "discovery.hello_interval_ms");
  auto short_key = keys.write("short.key", "1 00\n");
  CHECK(mentions(error_of(kBase + "[discovery]\nkey_file = \"" + short_key + "\"\n"), "32 bytes"));
  CHECK(error_of(kBase + "[discovery]\nkey_file = \"" + topo_key + "\"\nhello = 1\n").key ==
        "discovery.hello");
}

TEST_CASE("the [metrics] table: loopback by default, IP:PORT or [IPv6]:PORT, \"\" for off") {
  CHECK(config_of(kBase).metrics.listen == "127.0.0.1:9464");
  CHECK(config_of(kBase + "[metrics]\nlisten = \"0.0.0.0:9100\"\n").metrics.listen ==
        "0.0.0.0:9100");
  CHECK(config_of(kBase + "[metrics]\nlisten = \"[::1]:9100\"\n").metrics.listen == "[::1]:9100");
  CHECK(config_of(kBase + "[metrics]\nlisten = \"\"\n").metrics.listen.empty());
  for (const char* bad : {"localhost:9100", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                          "::1:9100", "[10.0.0.1]:80", "[::1]:x"}) {
    CAPTURE(bad);
    auto e = error_of(kBase + "[metrics]\nlisten = \"" + bad + "\"\n");
    CHECK(e.key == "metrics.listen");
    CHECK(e.line == 9);
  }
  CHECK(error_of(kBase + "[metrics]\nport = 1\n").key == "metrics.port");
}

TEST_CASE("defaults fill what the config leaves out") {
  Config c = config_of(kBase);
  CHECK(c.path == "t.toml");
  CHECK(c.node.ml_device == "ml0");
  CHECK(c.node.hash == HashPolicy::L34);
  CHECK(c.node.rx_mode == RxMode::Redirect);
  CHECK(c.node.bpffs == "/sys/fs/bpf");
  REQUIRE(c.links.size() == 2);
  CHECK(c.links[0].weight == 1);
  CHECK_FALSE(c.links[0].backup);
  CHECK(c.peers.empty());
  CHECK(config_of("peer = []\n" + kBase).peers.empty());
}

TEST_CASE("every field is read, with its line") {
  Config c = config_of(
      "[node]\n"
      "id = \"Host_1-x\"\n"
      "ml_address = [\"fd88::1/64\"]\n"
      "ml_device = \"mlx\"\n"
      "hash = \"socket\"\n"
      "rx_mode = \"loose\"\n"
      "bpffs = \"/run/bpf\"\n"
      "[[link]]\n"
      "device = \"eth0\"\n"
      "weight = 255\n"
      "backup = true\n"
      "[[peer]]\n"
      "ml_address = [\"fd88::2\"]\n"
      "hash = \"l34\"\n"
      "via = [\n"
      "  { device = \"eth0\", address = [\"fd00::2\"] },\n"
      "]\n");
  CHECK(c.node.line == 1);
  CHECK(c.node.id == "Host_1-x");
  CHECK(c.node.ml_address.at(0).len == 64);
  CHECK(c.node.ml_device == "mlx");
  CHECK(c.node.hash == HashPolicy::Socket);
  CHECK(c.node.rx_mode == RxMode::Loose);
  CHECK(c.node.bpffs == "/run/bpf");
  CHECK(c.links.at(0).line == 8);
  CHECK(c.links[0].weight == 255);
  CHECK(c.links[0].backup);
  CHECK(c.peers.at(0).line == 12);
  CHECK(c.peers[0].hash == HashPolicy::L34);
  CHECK(c.peers[0].via.at(0).line == 16);
  CHECK(c.peers[0].via[0].address.at(0).family == AF_INET6);
}

TEST_CASE("to_string names the policies as the config spells them") {
  CHECK(std::string(to_string(HashPolicy::L34)) == "l34");
  CHECK(std::string(to_string(HashPolicy::Socket)) == "socket");
  CHECK(std::string(to_string(RxMode::Redirect)) == "redirect");
  CHECK(std::string(to_string(RxMode::Loose)) == "loose");
}

TEST_CASE("ConfigError::str omits what is unknown") {
  CHECK(ConfigError{"f", 3, 7, "node.id", "bad"}.str() == "f:3:7: node.id: bad");
  CHECK(ConfigError{"f", 3, 0, "node.id", "bad"}.str() == "f:3: node.id: bad");
  CHECK(ConfigError{"f", 0, 0, "", "gone"}.str() == "f: gone");
  CHECK(ConfigError{"f", 2, 5, "", "syntax"}.str() == "f:2:5: syntax");
}

TEST_CASE("a missing file is an error naming it") {
  LoadResult r = load("/nonexistent/mlink.toml");
  REQUIRE(r.error);
  CHECK_FALSE(r.config);
  CHECK(r.error->line == 0);
  CHECK(r.error->file == "/nonexistent/mlink.toml");
  CHECK(r.error->str().find("/nonexistent/mlink.toml: ") == 0);
  CHECK(mentions(*r.error, "No such file"));
  CHECK(load("/").error);  // a directory is unreadable too
}

TEST_CASE("a TOML syntax error has line and column") {
  ConfigError e = error_of(kBase + "weight = \n");
  CHECK(e.line == 8);
  CHECK(e.column > 0);
  CHECK(e.key.empty());
  CHECK(error_of(kNode + "[node]\n").line == 4);  // a table defined twice
}

TEST_CASE("unknown keys are reported at the key, at every level") {
  ConfigError e =
      error_of("[node]\nid = \"a\"\ncolour = \"red\"\nml_address = [\"10.88.0.1/16\"]\n" + kLinks);
  CHECK(e.line == 3);
  CHECK(e.column == 1);
  CHECK(e.key == "node.colour");
  CHECK(mentions(e, "unknown key"));

  e = error_of(kBase + "[nodes]\n");
  CHECK(e.line == 8);
  CHECK(e.key == "nodes");

  e = error_of(kBase + "[[link]]\ndevice = \"eth2\"\nspeed = 10\n");
  CHECK(e.line == 10);
  CHECK(e.key == "link[2].speed");

  e = error_of(kBase +
               "[[peer]]\n"
               "ml_address = [\"10.88.0.2\"]\n"
               "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] },\n"
               "       { device = \"eth1\", address = [\"10.1.0.2\"], mtu = 1400 }]\n");
  CHECK(e.line == 11);
  CHECK(e.column == 51);
  CHECK(e.key == "peer[0].via[1].mtu");
}

TEST_CASE("missing required keys are reported at their table") {
  ConfigError e = error_of("\n[node]\nml_address = [\"10.88.0.1/16\"]\n" + kLinks);
  CHECK(e.line == 2);
  CHECK(e.column == 0);
  CHECK(e.key == "node.id");
  CHECK(mentions(e, "missing"));

  e = error_of(kLinks);
  CHECK(e.key == "node");
  CHECK(e.line == 1);

  e = error_of(kNode);
  CHECK(e.key == "link");
  CHECK(mentions(e, "[[link]]"));

  e = error_of("\nlink = []\n" + kNode);  // root keys must precede [node]
  CHECK(e.key == "link");
  CHECK(e.line == 2);

  e = error_of(kBase + "[[link]]\nweight = 2\n");
  CHECK(e.key == "link[2].device");
  CHECK(e.line == 8);

  e = error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\"]\n");
  CHECK(e.key == "peer[0].via");
  CHECK(e.line == 8);

  e = error_of(kBase + "[[peer]]\nvia = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n");
  CHECK(e.key == "peer[0].ml_address");

  e = error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\"]\nvia = [{ device = \"eth0\" }]\n");
  CHECK(e.key == "peer[0].via[0].address");
  CHECK(e.line == 10);
}

TEST_CASE("wrong types name what was expected") {
  ConfigError e = error_of(kBase + "weight = \"1\"\n");
  CHECK(e.key == "link[1].weight");
  CHECK(e.line == 8);
  CHECK(e.column == 10);
  CHECK(mentions(e, "must be an integer, not a string"));

  e = error_of(kBase + "backup = 1\n");
  CHECK(e.key == "link[1].backup");
  CHECK(mentions(e, "boolean"));

  CHECK(error_of(kBase + "weight = 1.0\n").key == "link[1].weight");
  CHECK(error_of("node = 5\n" + kLinks).key == "node");
  CHECK(error_of(kNode + "[link]\ndevice = \"eth0\"\n").key == "link");
  CHECK(error_of("[node]\nid = 7\nml_address = [\"10.88.0.1/16\"]\n" + kLinks).key == "node.id");
  CHECK(error_of("[node]\nid = \"a\"\nml_address = \"10.88.0.1/16\"\n" + kLinks).key ==
        "node.ml_address");

  e = error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\", 6]\n" + kLinks);
  CHECK(e.key == "node.ml_address[1]");
  CHECK(e.line == 3);

  e = error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\"]\nvia = [\"eth0\"]\n");
  CHECK(e.key == "peer[0].via[0]");
  CHECK(e.line == 10);
}

TEST_CASE("bad values are rejected with their key") {
  auto node = [](const std::string& extra) {
    return "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n" + extra + kLinks;
  };
  CHECK(error_of(node("hash = \"random\"\n")).key == "node.hash");
  CHECK(error_of(node("rx_mode = \"strict\"\n")).key == "node.rx_mode");
  CHECK(error_of(node("spread = \"packet\"\n")).key == "node.spread");
  CHECK(error_of(node("flowlet_gap_us = 9\n")).key == "node.flowlet_gap_us");
  CHECK(error_of(node("flowlet_gap_us = 1000001\n")).key == "node.flowlet_gap_us");
  CHECK(error_of(node("socket_queue_limit = 65535\n")).key == "node.socket_queue_limit");
  CHECK(error_of(node("socket_queue_limit = 1073741825\n")).key == "node.socket_queue_limit");
  CHECK(error_of(node("socket_queue_limit = -1\n")).key == "node.socket_queue_limit");
  CHECK(error_of(node("bpffs = \"sys/fs/bpf\"\n")).key == "node.bpffs");
  CHECK(error_of(node("ml_device = \"\"\n")).key == "node.ml_device");
  CHECK(error_of(node("ml_device = \"a-name-too-long0\"\n")).key == "node.ml_device");
  CHECK(error_of(node("ml_device = \"ml 0\"\n")).key == "node.ml_device");
  CHECK(config_of(node("ml_device = \"a-name-15-chars\"\n")).node.ml_device == "a-name-15-chars");
  ConfigError e = error_of("[node]\nid = \"a.b\"\nml_address = [\"10.88.0.1/16\"]\n" + kLinks);
  CHECK(e.key == "node.id");
  CHECK(e.line == 2);
  CHECK(error_of("[node]\nid = \"\"\nml_address = [\"10.88.0.1/16\"]\n" + kLinks).key == "node.id");
  CHECK(error_of("[node]\nid = \"" + std::string(33, 'x') +
                 "\"\nml_address = [\"10.88.0.1/16\"]\n" + kLinks)
            .key == "node.id");
  CHECK(error_of(kBase + "[[link]]\ndevice = \"eth/2\"\n").key == "link[2].device");
  CHECK(error_of(kBase + "[[peer]]\nhash = \"l4\"\nml_address = [\"10.88.0.2\"]\n"
                         "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n")
            .key == "peer[0].hash");
}

TEST_CASE("link weight must be 1..255") {
  ConfigError e = error_of(kBase + "weight = 0\n");
  CHECK(e.key == "link[1].weight");
  CHECK(e.line == 8);
  CHECK(mentions(e, "1..255"));
  e = error_of(kBase + "weight = 256\n");
  CHECK(e.key == "link[1].weight");
  CHECK(e.line == 8);
  CHECK(error_of(kBase + "weight = -1\n").key == "link[1].weight");
}

TEST_CASE("node ML addresses are prefixes, at most one per family") {
  ConfigError e =
      error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\", \"fd88::x/64\"]\n" + kLinks);
  CHECK(e.key == "node.ml_address[1]");
  CHECK(e.line == 3);
  CHECK(e.column == 31);
  CHECK(mentions(e, "fd88::x/64"));

  e = error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1\"]\n" + kLinks);
  CHECK(e.key == "node.ml_address[0]");
  CHECK(mentions(e, "/len"));

  CHECK(error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1/33\"]\n" + kLinks).key ==
        "node.ml_address[0]");
  CHECK(error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\", \"10.89.0.1/16\"]\n" + kLinks)
            .key == "node.ml_address[1]");
  CHECK(error_of("[node]\nid = \"a\"\nml_address = []\n" + kLinks).key == "node.ml_address");
}

TEST_CASE("peer addresses are plain addresses") {
  std::string peer0 =
      "[[peer]]\nml_address = [\"10.88.0.2\"]\nvia = [{ device = \"eth0\", address = "
      "[\"10.0.0.2\"] }]\n";
  ConfigError e = error_of(kBase + peer0 +
                           "[[peer]]\n"
                           "ml_address = [\"10.88.0.3/16\"]\n"
                           "via = [{ device = \"eth0\", address = [\"10.0.0.3\"] }]\n");
  CHECK(e.key == "peer[1].ml_address[0]");
  CHECK(e.line == 12);
  CHECK(mentions(e, "without /len"));

  e = error_of(kBase +
               "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
               "via = [{ device = \"eth0\", address = [\"10.0.0.2\", \"10.0.0.3\"] }]\n");
  CHECK(e.key == "peer[0].via[0].address[1]");
  CHECK(e.line == 10);
  CHECK(mentions(e, "one per family"));

  e = error_of(kBase +
               "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
               "via = [{ device = \"eth0\", address = [\"10.0.0.300\"] }]\n");
  CHECK(e.key == "peer[0].via[0].address[0]");
  CHECK(error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                         "via = [{ device = \"eth0\", address = [] }]\n")
            .key == "peer[0].via[0].address");
  CHECK(error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\"]\nvia = []\n").key ==
        "peer[0].via");
}

TEST_CASE("duplicates are rejected at the second occurrence") {
  ConfigError e = error_of(kBase + "[[link]]\ndevice = \"eth0\"\n");
  CHECK(e.key == "link[2].device");
  CHECK(e.line == 9);
  CHECK(mentions(e, "duplicate"));
  CHECK(mentions(e, "link[0]"));

  std::string via = "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n";
  e = error_of(kBase + "[[peer]]\nml_address = [\"10.88.0.2\", \"fd88::2\"]\n" + via +
               "[[peer]]\nml_address = [\"10.88.0.3\", \"fd88::2\"]\n" + via);
  CHECK(e.key == "peer[1].ml_address[1]");
  CHECK(e.line == 12);
  CHECK(mentions(e, "duplicate peer"));

  e = error_of(kBase + "[[peer]]\nml_address = [\"fd88::1\"]\n" + via);
  CHECK(e.key == "peer[0].ml_address[0]");
  CHECK(mentions(e, "local"));

  e = error_of(kBase +
               "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
               "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] },\n"
               "       { device = \"eth0\", address = [\"10.1.0.2\"] }]\n");
  CHECK(e.key == "peer[0].via[1].device");
  CHECK(e.line == 11);

  e = error_of("[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\nml_device = \"eth0\"\n" +
               kLinks);
  CHECK(e.key == "link[0].device");
}

TEST_CASE("a via must name a [[link]] device, wherever the link is") {
  ConfigError e = error_of(kBase +
                           "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                           "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] },\n"
                           "       { device = \"eth7\", address = [\"10.7.0.2\"] }]\n");
  CHECK(e.key == "peer[0].via[1].device");
  CHECK(e.line == 11);
  CHECK(mentions(e, "eth7"));

  // Peers before links: the reference still resolves.
  Config c = config_of(kNode +
                       "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                       "via = [{ device = \"eth1\", address = [\"10.1.0.2\"] }]\n" +
                       kLinks);
  CHECK(c.peers.at(0).via.at(0).device == "eth1");
}

TEST_CASE("the first error in the document is reported") {
  // The bad weight (line 5) comes after the unknown key (line 4) in the
  // document, and the dangling via (a relation) waits for both.
  ConfigError e = error_of(kNode +
                           "[[link]]\n"
                           "colour = 1\n"
                           "weight = 0\n"
                           "device = \"eth0\"\n"
                           "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
                           "via = [{ device = \"eth9\", address = [\"10.0.0.2\"] }]\n");
  CHECK(e.key == "link[0].colour");
  CHECK(e.line == 5);
  // A misspelt key is more useful than the missing one it leaves behind.
  e = error_of("[node]\nid = \"a\"\nml_adress = [\"10.88.0.1/16\"]\n" + kLinks);
  CHECK(e.key == "node.ml_adress");
  CHECK(e.line == 3);
  // A broken link device must not also show up as a dangling via before it.
  e = error_of(kNode +
               "[[peer]]\nml_address = [\"10.88.0.2\"]\n"
               "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n"
               "[[link]]\ndevice = 0\n");
  CHECK(e.key == "link[0].device");
  CHECK(e.line == 8);
}

TEST_CASE("check_devices reports the first link device that does not exist") {
  Config c = config_of(kBase + "[[link]]\ndevice = \"eth2\"\n");
  std::set<std::string> present = {"eth0", "eth2"};
  auto exists = [&](const std::string& d) { return present.count(d) > 0; };
  auto e = check_devices(c, exists);
  REQUIRE(e);
  CHECK(e->file == "t.toml");
  CHECK(e->key == "link[1].device");
  CHECK(e->line == 6);
  CHECK(mentions(*e, "eth1"));
  present.insert("eth1");
  CHECK_FALSE(check_devices(c, exists));
}

TEST_CASE("the [bfd] table: defaults, values, bounds and unknown keys") {
  const std::string base = R"([node]
id = "a"
ml_address = ["10.88.0.1/16"]
[[link]]
device = "eth0"
)";
  auto ok = mlink::config::parse(base + "[bfd]\nallow_unauthenticated = true\n", "t.toml");
  REQUIRE(ok.config);
  CHECK(ok.config->bfd.enabled);
  CHECK(ok.config->bfd.interval_ms == 30);
  CHECK(ok.config->bfd.multiplier == 3);
  auto set = mlink::config::parse(
      base + "[bfd]\nenabled = false\ninterval_ms = 10\nmultiplier = 5\n", "t.toml");
  REQUIRE(set.config);
  CHECK_FALSE(set.config->bfd.enabled);
  CHECK(set.config->bfd.interval_ms == 10);
  CHECK(set.config->bfd.multiplier == 5);
  auto low = mlink::config::parse(base + "[bfd]\ninterval_ms = 5\n", "t.toml");
  REQUIRE(low.error);
  CHECK(low.error->line == 7);
  CHECK(low.error->key == "bfd.interval_ms");
  auto unknown = mlink::config::parse(base + "[bfd]\nmultipler = 3\n", "t.toml");
  REQUIRE(unknown.error);
  CHECK(unknown.error->key == "bfd.multipler");
}

TEST_CASE("reload: links, peers and node.hash change at run time; anything else needs a restart") {
  const std::string peer =
      "[[peer]]\n"
      "ml_address = [\"10.88.0.2\"]\n"
      "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n";
  Config running = config_of(kBase);
  // What a reload applies.
  CHECK_FALSE(restart_only_change(running, config_of(kBase + "[[link]]\ndevice = \"eth2\"\n")));
  CHECK_FALSE(restart_only_change(running, config_of(kNode + "[[link]]\ndevice = \"eth0\"\n"
                                                             "weight = 3\nbackup = true\n")));
  CHECK_FALSE(restart_only_change(running, config_of(kBase + peer)));
  CHECK_FALSE(restart_only_change(running, config_of("[node]\nid = \"a\"\nml_address = "
                                                     "[\"10.88.0.1/16\", \"fd88::1/64\"]\nhash = "
                                                     "\"socket\"\n" +
                                                     kLinks)));
  // What it refuses, naming the key and its line in the new file.
  auto refused = [&](const std::string& text) {
    auto e = restart_only_change(running, config_of(text));
    REQUIRE(e);
    CHECK(e->file == "t.toml");
    CHECK(e->message.find("restart") != std::string::npos);
    return *e;
  };
  auto e =
      refused("[node]\nid = \"b\"\nml_address = [\"10.88.0.1/16\", \"fd88::1/64\"]\n" + kLinks);
  CHECK(e.key == "node.id");
  CHECK(e.line == 1);
  CHECK(refused("[node]\nid = \"a\"\nml_address = [\"10.88.0.9/16\"]\n" + kLinks).key ==
        "node.ml_address");
  e = refused(kBase + "[bfd]\nallow_unauthenticated = true\ninterval_ms = 50\n");
  CHECK(e.key == "bfd.interval_ms");
  CHECK(e.line == 8);
  CHECK(refused(kBase + "[metrics]\nlisten = \"\"\n").key == "metrics.listen");
}

TEST_CASE("node.max_peers: 1024 by default, 1..16384, and every [[peer]] must fit") {
  CHECK(config_of(kBase).node.max_peers == 1024);
  CHECK(config_of(kNode + "max_peers = 4096\n" + kLinks).node.max_peers == 4096);
  CHECK(config_of(kNode + "max_peers = 16384\n" + kLinks).node.max_peers == kMaxPeersLimit);
  CHECK(config_of(kNode + "max_peers = 1\n" + kLinks).node.max_peers == 1);
  for (const char* bad : {"0", "16385", "-1"}) {
    ConfigError e = error_of(kNode + "max_peers = " + bad + "\n" + kLinks);
    CHECK(e.key == "node.max_peers");
    CHECK(e.line == 4);
    CHECK(e.column == 13);
    CHECK(e.message == std::string("must be 1..16384, got ") + bad);
    CHECK(e.str() == "t.toml:4:13: node.max_peers: must be 1..16384, got " + std::string(bad));
  }
  ConfigError e = error_of(kNode + "max_peers = \"4096\"\n" + kLinks);
  CHECK(e.key == "node.max_peers");
  CHECK(e.message == "must be an integer, not a string");

  // Static peers are always kept, so more of them than max_peers is an error
  // at the first one over.
  auto peer = [](int n) {
    return "[[peer]]\nml_address = [\"10.88.1." + std::to_string(n) +
           "\"]\nvia = [{ device = \"eth0\", address = [\"10.0.0." + std::to_string(n) + "\"] }]\n";
  };
  std::string two = kNode + "max_peers = 2\n" + kLinks + peer(2) + peer(3);  // peers at 9, 12
  CHECK(config_of(two).peers.size() == 2);
  e = error_of(two + peer(4));
  CHECK(e.key == "peer[2]");
  CHECK(e.line == 15);
  CHECK(e.message.find("node.max_peers (2)") != std::string::npos);
  CHECK(e.message.find("at least 3") != std::string::npos);
}

TEST_CASE("reload: node.max_peers needs a restart (the maps are sized at load)") {
  Config running = config_of(kBase);
  auto e = restart_only_change(running, config_of(kNode + "max_peers = 4096\n" + kLinks));
  REQUIRE(e);
  CHECK(e->key == "node.max_peers");
  CHECK(e->line == 1);
  CHECK_FALSE(restart_only_change(running, config_of(kNode + "max_peers = 1024\n" + kLinks)));
}

// A key rotation (OPERATIONS.md, "Keys and rotation"): every key of the file verifies, the one
// named by send_key_id signs, and a reload may change both.
TEST_CASE("send_key_id names the signing key; the others only verify; a reload may change them") {
  KeyDir keys;
  auto bfd_key = keys.write("bfd.key", "3 00ff\n7 " + std::string(40, 'e') + "\n");
  auto topo_key =
      keys.write("topo.key", std::string(kTopoKey) + "9 " + std::string(64, 'a') + "\n");
  Config c = config_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\nsend_key_id = 3\n");
  CHECK(c.bfd.send_key_id == 3u);
  CHECK(c.bfd.keys.size() == 2);
  CHECK_FALSE(config_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\n").bfd.send_key_id);
  auto missing = error_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\nsend_key_id = 5\n");
  CHECK(missing.key == "bfd.send_key_id");
  CHECK(missing.line == 10);
  CHECK(mentions(missing, "key id 5 is not in " + bfd_key));
  auto no_file = error_of(kBase + "[bfd]\nallow_unauthenticated = true\nsend_key_id = 1\n");
  CHECK(no_file.key == "bfd.send_key_id");
  CHECK(mentions(no_file, "bfd.key_file"));
  CHECK(error_of(kBase + "[bfd]\nkey_file = \"" + bfd_key + "\"\nsend_key_id = 256\n").key ==
        "bfd.send_key_id");
  Config d = config_of(kBase + "[bfd]\nenabled = false\n[discovery]\nkey_file = \"" + topo_key +
                       "\"\nsend_key_id = 9\n");
  CHECK(d.discovery.send_key_id == 9u);
  CHECK(error_of(kBase + "[bfd]\nenabled = false\n[discovery]\nkey_file = \"" + topo_key +
                 "\"\nsend_key_id = 8\n")
            .key == "discovery.send_key_id");

  // Reload: new keys and a new send key apply at run time...
  auto one = keys.write("one.key", "3 00ff\n");
  Config running = config_of(kBase + "[bfd]\nkey_file = \"" + one + "\"\n");
  CHECK_FALSE(restart_only_change(running, c));
  CHECK_FALSE(restart_only_change(d, config_of(kBase +
                                               "[bfd]\nenabled = false\n[discovery]\n"
                                               "key_file = \"" +
                                               topo_key + "\"\n")));
  // ... turning BFD authentication on or off does not.
  auto e = restart_only_change(running, config_of(kBase + "[bfd]\nallow_unauthenticated = true\n"));
  REQUIRE(e);
  CHECK(e->key == "bfd.key_file");
}

TEST_CASE("spread: flow by default; flowlet for the node or one peer, with the node's gap") {
  auto node = [](const std::string& extra) {
    return "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n" + extra + kLinks;
  };
  auto c = config_of(node(""));
  CHECK(c.node.spread == Spread::Flow);
  CHECK(c.node.flowlet_gap_us == kDefaultFlowletGapUs);
  c = config_of(node("spread = \"flowlet\"\nflowlet_gap_us = 200\n"));
  CHECK(c.node.spread == Spread::Flowlet);
  CHECK(c.node.flowlet_gap_us == 200);
  c = config_of(node("") +
                "[[peer]]\nml_address = [\"10.88.0.2\"]\nspread = \"flowlet\"\n"
                "via = [{ device = \"eth0\", address = [\"10.0.0.2\"] }]\n");
  REQUIRE(c.peers.size() == 1);
  CHECK(c.peers[0].spread == Spread::Flowlet);
  CHECK(std::string(to_string(Spread::Flowlet)) == "flowlet");
}

TEST_CASE("socket_queue_limit: by spread unless set; 0 or at least 64 KiB") {
  auto node = [](const std::string& extra) {
    return "[node]\nid = \"a\"\nml_address = [\"10.88.0.1/16\"]\n" + extra + kLinks;
  };
  auto unset = config_of(node("")).node;
  CHECK_FALSE(unset.socket_queue_limit);
  CHECK(socket_queue_limit_for(unset.socket_queue_limit, Spread::Flow) == 0);
  CHECK(socket_queue_limit_for(unset.socket_queue_limit, Spread::Flowlet) ==
        kFlowletSocketQueueLimit);
  auto off = config_of(node("socket_queue_limit = 0\n")).node;
  CHECK(socket_queue_limit_for(off.socket_queue_limit, Spread::Flowlet) == 0);
  CHECK(socket_queue_limit_for(
            config_of(node("socket_queue_limit = 131072\n")).node.socket_queue_limit,
            Spread::Flow) == 131072);
  CHECK(config_of(node("socket_queue_limit = 65536\n")).node.socket_queue_limit == 65536);
  CHECK(config_of(node("socket_queue_limit = 131072\n")).node.socket_queue_limit == 131072);
  auto e = error_of(node("socket_queue_limit = 4096\n"));
  CHECK(e.key == "node.socket_queue_limit");
  CHECK(e.line == 4);
  CHECK(e.message.find("at least 65536") != std::string::npos);
}
