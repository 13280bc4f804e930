#include "config/config.h"

#include <sys/socket.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <map>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/result.h"

namespace mlink::config {
namespace {

constexpr size_t kMaxIdLen = 32;
constexpr size_t kMaxIfnameLen = 15;  // IFNAMSIZ - 1
constexpr int64_t kMaxWeight = 255;

template <class E>
struct EnumName {
  std::string_view text;
  E value;
};
constexpr EnumName<HashPolicy> kHashNames[] = {{"l34", HashPolicy::L34},
                                               {"socket", HashPolicy::Socket}};
constexpr EnumName<Spread> kSpreadNames[] = {{"flow", Spread::Flow}, {"flowlet", Spread::Flowlet}};
constexpr EnumName<RxMode> kRxModeNames[] = {{"redirect", RxMode::Redirect},
                                             {"loose", RxMode::Loose}};

template <class E, size_t N>
const char* enum_text(const EnumName<E> (&names)[N], E value) {
  for (const auto& n : names)
    if (n.value == value) return n.text.data();
  return "?";
}

// "a", "b" or "c"
template <class E, size_t N>
std::string enum_choices(const EnumName<E> (&names)[N]) {
  std::string out;
  for (size_t i = 0; i < N; i++) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += "\"" + std::string(names[i].text) + "\"";
  }
  return out;
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string index(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

const char* family_name(int family) {
  return family == AF_INET ? "IPv4" : "IPv6";
}

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

template <class T>
constexpr toml::node_type node_type_of() {
  if constexpr (std::is_same_v<T, toml::table>) return toml::node_type::table;
  if constexpr (std::is_same_v<T, toml::array>) return toml::node_type::array;
  if constexpr (std::is_same_v<T, std::string>) return toml::node_type::string;
  if constexpr (std::is_same_v<T, int64_t>) return toml::node_type::integer;
  if constexpr (std::is_same_v<T, bool>) return toml::node_type::boolean;
  return toml::node_type::none;
}

bool valid_id(std::string_view s) {
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  };
  return !s.empty() && s.size() <= kMaxIdLen && std::all_of(s.begin(), s.end(), ok);
}

// The kernel's dev_valid_name(): no '/', ':' or whitespace, not "." or "..".
bool valid_ifname(std::string_view s) {
  if (s.empty() || s.size() > kMaxIfnameLen || s == "." || s == "..") return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '/' || c == ':' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
  });
}

// IP:PORT or [IPv6]:PORT with a literal address, or "" (off).
bool valid_listen(std::string_view s) {
  if (s.empty()) return true;
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == s.size()) return false;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto a = IpAddr::parse(host.substr(1, host.size() - 2));
    return a && !a->is_v4();
  }
  auto a = IpAddr::parse(host);
  return a && a->is_v4();
}

bool absolute_path(std::string_view s) {
  return !s.empty() && s.front() == '/';
}

int family_of(const IpAddr& a) {
  return a.family;
}
int family_of(const Prefix& p) {
  return p.addr.family;
}

// The ML prefix needs an explicit length: it defines the on-link ML subnet.
Result<Prefix> parse_prefix(std::string_view s) {
  if (s.find('/') == std::string_view::npos)
    return Error{"expected a prefix with /len (e.g. 10.88.0.1/16), got " + quoted(s)};
  if (auto p = Prefix::parse(s)) return *p;
  return Error{"not a valid IPv4/IPv6 prefix: " + quoted(s)};
}

Result<IpAddr> parse_addr(std::string_view s) {
  if (s.find('/') != std::string_view::npos)
    return Error{"expected a plain address without /len, got " + quoted(s)};
  if (auto a = IpAddr::parse(s)) return *a;
  return Error{"not a valid IPv4/IPv6 address: " + quoted(s)};
}

ConfigError make_error(const std::string& file, const toml::source_region& at, std::string key,
                       std::string message) {
  return ConfigError{file, static_cast<int>(at.begin.line), static_cast<int>(at.begin.column),
                     std::move(key), std::move(message)};
}

const ConfigError* earliest(const std::vector<ConfigError>& errors) {
  auto it = std::min_element(errors.begin(), errors.end(), [](const auto& a, const auto& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return it == errors.end() ? nullptr : &*it;
}

// An address-list element with where it came from, for later cross-checks.
template <class T>
struct Located {
  T value;
  const toml::node* node;
  std::string key;
};

// Walks the parsed document once, filling a Config and collecting errors.
class Loader {
 public:
  explicit Loader(std::string file) : file_(std::move(file)) {}
  LoadResult run(const toml::table& root);

 private:
  template <class T>
  using Ptr = decltype(std::declval<const toml::node&>().as<T>());

  void fail(const toml::source_region& at, std::string key, std::string message);
  void fail_missing(const toml::table& parent, std::string key, std::string message);
  void fail_relation(const toml::source_region& at, std::string key, std::string message);
  void check_keys(const toml::table& t, const std::string& path,
                  std::initializer_list<std::string_view> known);
  const toml::node* find(const toml::table& t, const std::string& path, std::string_view key,
                         bool required);
  template <class T>
  Ptr<T> as(const toml::node& n, const std::string& key);
  template <class T>
  Ptr<T> get(const toml::table& t, const std::string& path, std::string_view key, bool required);
  std::optional<std::string> string(const toml::table& t, const std::string& path,
                                    std::string_view key, bool required,
                                    bool (*valid)(std::string_view), const char* rule);
  template <class E, size_t N>
  std::optional<E> choice(const toml::table& t, const std::string& path, std::string_view key,
                          const EnumName<E> (&names)[N]);
  template <class T, class Parse>
  std::vector<Located<T>> address_list(const toml::table& t, const std::string& path,
                                       std::string_view key, Parse parse);
  const toml::array* tables(const toml::table& root, std::string_view key, bool required);

  void load_node(const toml::table& root);
  void load_bfd(const toml::table& root);
  void load_discovery(const toml::table& root);
  void load_metrics(const toml::table& root);
  void check_whole(const toml::table& root);
  std::optional<std::string> key_file(const toml::table& t, const std::string& path,
                                      const KeyFileRules& rules, KeyMap& keys);
  std::optional<uint32_t> send_key_id(const toml::table& t, const std::string& path, int64_t max_id,
                                      const KeyMap& keys);
  std::optional<IpAddr> group(const toml::table& t, const std::string& path, std::string_view key,
                              int family);
  std::optional<uint32_t> bounded(const toml::table& t, const std::string& path,
                                  std::string_view key, int64_t lo, int64_t hi);
  void load_link(const toml::table& t, const std::string& path);
  void load_peer(const toml::table& t, const std::string& path);
  Via load_via(const toml::table& t, const std::string& path, std::set<std::string>& devices);
  void check_peer_address(const Located<IpAddr>& a, size_t peer);

  std::string file_;
  Config cfg_;
  // Reported in this order, each the earliest in the document. A missing key
  // waits for unknown keys (it may be misspelt); a relation error (duplicate,
  // dangling reference) may be only an echo of a bad value.
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> missing_errors_;
  std::vector<ConfigError> relation_errors_;
  std::map<std::string, size_t> link_devices_;  // device -> link index
  std::map<IpAddr, size_t> peer_addresses_;     // ML address -> peer index
};

void Loader::fail(const toml::source_region& at, std::string key, std::string message) {
  errors_.push_back(make_error(file_, at, std::move(key), std::move(message)));
}

// An absent key has no position: report the line of the table that should hold it.
void Loader::fail_missing(const toml::table& parent, std::string key, std::string message) {
  ConfigError e = make_error(file_, parent.source(), std::move(key), std::move(message));
  e.column = 0;
  missing_errors_.push_back(std::move(e));
}

void Loader::fail_relation(const toml::source_region& at, std::string key, std::string message) {
  relation_errors_.push_back(make_error(file_, at, std::move(key), std::move(message)));
}

void Loader::check_keys(const toml::table& t, const std::string& path,
                        std::initializer_list<std::string_view> known) {
  for (auto&& [k, v] : t) {
    if (std::find(known.begin(), known.end(), k.str()) == known.end())
      fail(k.source(), join(path, k.str()), "unknown key " + quoted(k.str()));
  }
}

const toml::node* Loader::find(const toml::table& t, const std::string& path, std::string_view key,
                               bool required) {
  const toml::node* n = t.get(key);
  if (!n && required) fail_missing(t, join(path, key), "missing required key");
  return n;
}

template <class T>
Loader::Ptr<T> Loader::as(const toml::node& n, const std::string& key) {
  auto p = n.as<T>();
  if (!p)
    fail(n.source(), key,
         std::string("must be ") + type_name(node_type_of<T>()) + ", not " + type_name(n.type()));
  return p;
}

template <class T>
Loader::Ptr<T> Loader::get(const toml::table& t, const std::string& path, std::string_view key,
                           bool required) {
  const toml::node* n = find(t, path, key, required);
  return n ? as<T>(*n, join(path, key)) : nullptr;
}

std::optional<std::string> Loader::string(const toml::table& t, const std::string& path,
                                          std::string_view key, bool required,
                                          bool (*valid)(std::string_view), const char* rule) {
  auto s = get<std::string>(t, path, key, required);
  if (!s) return std::nullopt;
  if (!valid(s->get())) {
    fail(s->source(), join(path, key), std::string(rule) + ", got " + quoted(s->get()));
    return std::nullopt;
  }
  return s->get();
}

template <class E, size_t N>
std::optional<E> Loader::choice(const toml::table& t, const std::string& path, std::string_view key,
                                const EnumName<E> (&names)[N]) {
  auto s = get<std::string>(t, path, key, false);
  if (!s) return std::nullopt;
  for (const auto& n : names)
    if (n.text == s->get()) return n.value;
  fail(s->source(), join(path, key),
       "must be " + enum_choices(names) + ", got " + quoted(s->get()));
  return std::nullopt;
}

// A required list of one or two addresses, at most one per family.
template <class T, class Parse>
std::vector<Located<T>> Loader::address_list(const toml::table& t, const std::string& path,
                                             std::string_view key, Parse parse) {
  std::vector<Located<T>> out;
  std::string akey = join(path, key);
  auto arr = get<toml::array>(t, path, key, true);
  if (!arr) return out;
  if (arr->empty()) fail(arr->source(), akey, "must list at least one address");
  for (size_t i = 0; i < arr->size(); i++) {
    const toml::node& e = *arr->get(i);
    auto s = as<std::string>(e, index(akey, i));
    if (!s) continue;
    Result<T> v = parse(s->get());
    if (!v) {
      fail(e.source(), index(akey, i), v.error().message);
    } else if (std::any_of(out.begin(), out.end(),
                           [&](const auto& o) { return family_of(o.value) == family_of(*v); })) {
      fail(e.source(), index(akey, i),
           std::string("a second ") + family_name(family_of(*v)) +
               " address; at most one per family");
    } else {
      out.push_back({*v, &e, index(akey, i)});
    }
  }
  return out;
}

// [[link]] and [[peer]]: an array of tables, each checked by the caller.
const toml::array* Loader::tables(const toml::table& root, std::string_view key, bool required) {
  const toml::node* n = find(root, "", key, false);
  const toml::array* arr = n ? n->as_array() : nullptr;
  if (n && !(arr && (arr->empty() || arr->is_array_of_tables()))) {
    fail(n->source(), std::string(key),
         "must be an array of tables ([[" + std::string(key) + "]])");
    return nullptr;
  }
  std::string message = "at least one [[" + std::string(key) + "]] is required";
  if (required && !arr) fail_missing(root, std::string(key), message);
  if (required && arr && arr->empty()) fail(arr->source(), std::string(key), message);
  return arr;
}

void Loader::load_node(const toml::table& root) {
  auto t = get<toml::table>(root, "", "node", true);
  if (!t) return;
  Node& n = cfg_.node;
  n.line = static_cast<int>(t->source().begin.line);
  check_keys(*t, "node",
             {"id", "ml_address", "ml_device", "hash", "spread", "flowlet_gap_us",
              "socket_queue_limit", "rx_mode", "bpffs", "max_peers"});
  if (auto s = string(*t, "node", "id", true, valid_id, "must be 1-32 of A-Z a-z 0-9 _ -"))
    n.id = *s;
  for (auto& p : address_list<Prefix>(*t, "node", "ml_address", parse_prefix))
    n.ml_address.push_back(p.value);
  if (auto s = string(*t, "node", "ml_device", false, valid_ifname,
                      "must be a network device name of 1-15 characters"))
    n.ml_device = *s;
  if (auto h = choice(*t, "node", "hash", kHashNames)) n.hash = *h;
  if (auto s = choice(*t, "node", "spread", kSpreadNames)) n.spread = *s;
  if (auto g = bounded(*t, "node", "flowlet_gap_us", 10, 1000000)) n.flowlet_gap_us = *g;
  if (auto q = bounded(*t, "node", "socket_queue_limit", 0, kMaxSocketQueueLimit)) {
    if (*q != 0 && *q < kMinSocketQueueLimit)
      fail(t->get("socket_queue_limit")->source(), "node.socket_queue_limit",
           "must be 0 (no limit) or at least " + std::to_string(kMinSocketQueueLimit) + ", got " +
               std::to_string(*q));
    else
      n.socket_queue_limit = *q;
  }
  if (auto m = choice(*t, "node", "rx_mode", kRxModeNames)) n.rx_mode = *m;
  if (auto s = string(*t, "node", "bpffs", false, absolute_path, "must be an absolute path"))
    n.bpffs = *s;
  if (auto m = bounded(*t, "node", "max_peers", 1, kMaxPeersLimit)) n.max_peers = *m;
}

std::optional<uint32_t> Loader::bounded(const toml::table& t, const std::string& path,
                                        std::string_view key, int64_t lo, int64_t hi) {
  auto v = get<int64_t>(t, path, key, false);
  if (!v) return std::nullopt;
  if (v->get() < lo || v->get() > hi) {
    fail(v->source(), join(path, key),
         "must be " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
             std::to_string(v->get()));
    return std::nullopt;
  }
  return static_cast<uint32_t>(v->get());
}

void Loader::load_bfd(const toml::table& root) {
  auto t = get<toml::table>(root, "", "bfd", false);
  if (!t) return;
  cfg_.bfd.line = static_cast<int>(t->source().begin.line);
  check_keys(*t, "bfd",
             {"enabled", "interval_ms", "multiplier", "key_file", "send_key_id",
              "allow_unauthenticated", "echo"});
  if (auto e = get<bool>(*t, "bfd", "echo", false)) cfg_.bfd.echo = e->get();
  if (auto e = get<bool>(*t, "bfd", "enabled", false)) cfg_.bfd.enabled = e->get();
  if (auto i = bounded(*t, "bfd", "interval_ms", 10, 10000)) cfg_.bfd.interval_ms = *i;
  if (auto m = bounded(*t, "bfd", "multiplier", 1, 255)) cfg_.bfd.multiplier = *m;
  if (auto f = key_file(*t, "bfd", kBfdKeyRules, cfg_.bfd.keys)) cfg_.bfd.key_file = *f;
  cfg_.bfd.send_key_id = send_key_id(*t, "bfd", 255, cfg_.bfd.keys);
  if (auto a = get<bool>(*t, "bfd", "allow_unauthenticated", false)) {
    cfg_.bfd.allow_unauthenticated = a->get();
    if (a->get() && t->get("key_file"))
      fail_relation(a->source(), "bfd.allow_unauthenticated",
                    "contradicts bfd.key_file: with a key, BFD is always authenticated");
  }
}

// The key that signs must be one of the file's; the others only verify (a rotation's new
// key before every host has it, or its old key until every host has moved on).
std::optional<uint32_t> Loader::send_key_id(const toml::table& t, const std::string& path,
                                            int64_t max_id, const KeyMap& keys) {
  auto id = bounded(t, path, "send_key_id", 0, max_id);
  if (!id) return std::nullopt;
  if (!t.get("key_file")) {
    fail_relation(t.get("send_key_id")->source(), join(path, "send_key_id"),
                  "needs " + join(path, "key_file"));
    return std::nullopt;
  }
  if (!keys.empty() && !keys.count(*id)) {  // empty: the key file's own error is reported
    fail(t.get("send_key_id")->source(), join(path, "send_key_id"),
         "key id " + std::to_string(*id) + " is not in " +
             t.get("key_file")->value_or(std::string()));
    return std::nullopt;
  }
  return id;
}

// Reads the keys now, so a bad key file is a config error like any other.
// A relative path is relative to the config file.
std::optional<std::string> Loader::key_file(const toml::table& t, const std::string& path,
                                            const KeyFileRules& rules, KeyMap& keys) {
  auto s = get<std::string>(t, path, "key_file", false);
  if (!s) return std::nullopt;
  std::string file = s->get();
  if (!absolute_path(file)) {
    auto slash = file_.rfind('/');
    file = (slash == std::string::npos ? std::string() : file_.substr(0, slash + 1)) + file;
  }
  auto k = read_key_file(file, rules);
  if (!k) {
    fail(s->source(), join(path, "key_file"), k.error().message);
    return std::nullopt;
  }
  keys = std::move(*k);
  return file;
}

std::optional<IpAddr> Loader::group(const toml::table& t, const std::string& path,
                                    std::string_view key, int family) {
  auto s = get<std::string>(t, path, key, false);
  if (!s) return std::nullopt;
  auto a = IpAddr::parse(s->get());
  bool link_local_group =
      a && a->family == family &&
      (family == AF_INET ? a->bytes[0] == 224 && a->bytes[1] == 0 && a->bytes[2] == 0
                         : a->bytes[0] == 0xff && (a->bytes[1] & 0x0f) == 0x02);
  if (!link_local_group) {
    fail(s->source(), join(path, key),
         std::string("must be a link-local ") + family_name(family) + " multicast group (" +
             (family == AF_INET ? "224.0.0.0/24" : "ff02::/16") + "), got " + quoted(s->get()));
    return std::nullopt;
  }
  return a;
}

void Loader::load_discovery(const toml::table& root) {
  auto t = get<toml::table>(root, "", "discovery", false);
  if (!t) return;
  Discovery& d = cfg_.discovery;
  d.enabled = true;
  d.line = static_cast<int>(t->source().begin.line);
  check_keys(
      *t, "discovery",
      {"enabled", "port", "group4", "group6", "hello_interval_ms", "key_file", "send_key_id"});
  if (auto e = get<bool>(*t, "discovery", "enabled", false)) d.enabled = e->get();
  if (auto p = bounded(*t, "discovery", "port", 1, 65535)) d.port = static_cast<uint16_t>(*p);
  if (auto g = group(*t, "discovery", "group4", AF_INET)) d.group4 = *g;
  if (auto g = group(*t, "discovery", "group6", AF_INET6)) d.group6 = *g;
  if (auto i = bounded(*t, "discovery", "hello_interval_ms", 100, 60000)) d.hello_interval_ms = *i;
  if (!t->get("key_file"))
    fail_missing(*t, "discovery.key_file",
                 "missing required key: every topology packet is authenticated");
  else if (auto f = key_file(*t, "discovery", kTopoKeyRules, d.keys))
    d.key_file = *f;
  d.send_key_id = send_key_id(*t, "discovery", 65535, d.keys);
}

void Loader::load_metrics(const toml::table& root) {
  auto t = get<toml::table>(root, "", "metrics", false);
  if (!t) return;
  cfg_.metrics.line = static_cast<int>(t->source().begin.line);
  check_keys(*t, "metrics", {"listen"});
  if (auto l = string(*t, "metrics", "listen", false, valid_listen,
                      "must be IP:PORT or [IPv6]:PORT, or \"\" to turn metrics off"))
    cfg_.metrics.listen = *l;
}

void Loader::load_link(const toml::table& t, const std::string& path) {
  Link link;
  link.line = static_cast<int>(t.source().begin.line);
  check_keys(t, path, {"device", "weight", "backup"});
  auto dev = string(t, path, "device", true, valid_ifname,
                    "must be a network device name of 1-15 characters");
  if (dev) {
    link.device = *dev;
    auto [it, added] = link_devices_.emplace(*dev, cfg_.links.size());
    const toml::source_region& at = t.get("device")->source();
    if (!added)
      fail_relation(at, join(path, "device"),
                    "duplicate link device " + quoted(*dev) + ", already link[" +
                        std::to_string(it->second) + "]");
    else if (*dev == cfg_.node.ml_device)
      fail_relation(at, join(path, "device"), quoted(*dev) + " is node.ml_device");
  }
  if (auto w = get<int64_t>(t, path, "weight", false)) {
    if (w->get() < 1 || w->get() > kMaxWeight)
      fail(w->source(), join(path, "weight"), "must be 1..255, got " + std::to_string(w->get()));
    else
      link.weight = static_cast<uint32_t>(w->get());
  }
  if (auto b = get<bool>(t, path, "backup", false)) link.backup = b->get();
  cfg_.links.push_back(std::move(link));
}

void Loader::check_peer_address(const Located<IpAddr>& a, size_t peer) {
  for (const Prefix& local : cfg_.node.ml_address)
    if (local.addr == a.value)
      fail_relation(a.node->source(), a.key, a.value.str() + " is a local node.ml_address");
  auto [it, added] = peer_addresses_.emplace(a.value, peer);
  if (!added)
    fail_relation(a.node->source(), a.key,
                  "duplicate peer: " + a.value.str() + " is already an ML address of peer[" +
                      std::to_string(it->second) + "]");
}

Via Loader::load_via(const toml::table& t, const std::string& path,
                     std::set<std::string>& devices) {
  Via via;
  via.line = static_cast<int>(t.source().begin.line);
  check_keys(t, path, {"device", "address"});
  if (auto dev = get<std::string>(t, path, "device", true)) {
    via.device = dev->get();
    if (!link_devices_.count(via.device))
      fail_relation(dev->source(), join(path, "device"),
                    quoted(via.device) + " is not a [[link]] device");
    else if (!devices.insert(via.device).second)
      fail_relation(dev->source(), join(path, "device"),
                    "duplicate via device " + quoted(via.device) + " for this peer");
  }
  for (auto& a : address_list<IpAddr>(t, path, "address", parse_addr))
    via.address.push_back(a.value);
  return via;
}

void Loader::load_peer(const toml::table& t, const std::string& path) {
  Peer peer;
  peer.line = static_cast<int>(t.source().begin.line);
  check_keys(t, path, {"ml_address", "hash", "spread", "via"});
  for (auto& a : address_list<IpAddr>(t, path, "ml_address", parse_addr)) {
    check_peer_address(a, cfg_.peers.size());
    peer.ml_address.push_back(a.value);
  }
  peer.hash = choice(t, path, "hash", kHashNames);
  peer.spread = choice(t, path, "spread", kSpreadNames);
  auto vias = get<toml::array>(t, path, "via", true);
  if (vias && vias->empty()) fail(vias->source(), join(path, "via"), "must list at least one link");
  std::set<std::string> devices;
  for (size_t i = 0; vias && i < vias->size(); i++) {
    std::string vpath = index(join(path, "via"), i);
    if (auto vt = as<toml::table>(*vias->get(i), vpath))
      peer.via.push_back(load_via(*vt, vpath, devices));
  }
  cfg_.peers.push_back(std::move(peer));
}

// Rules that span sections.
void Loader::check_whole(const toml::table& root) {
  // Static peers are always kept, so they must fit (discovered nodes fill what is left).
  const toml::array* peers = root.get_as<toml::array>("peer");
  if (peers && peers->size() > cfg_.node.max_peers && peers->is_array_of_tables()) {
    size_t first_over = cfg_.node.max_peers;
    fail_relation(peers->get(first_over)->source(), index("peer", first_over),
                  "more [[peer]]s than node.max_peers (" + std::to_string(cfg_.node.max_peers) +
                      "): raise node.max_peers to at least " + std::to_string(peers->size()));
  }
  const toml::table* bfd = root.get_as<toml::table>("bfd");
  if (cfg_.bfd.enabled && cfg_.bfd.key_file.empty() && !cfg_.bfd.allow_unauthenticated &&
      !(bfd && bfd->get("key_file")))
    fail_missing(bfd ? *bfd : root, "bfd.key_file",
                 "BFD needs a key_file (Meticulous Keyed SHA1), or allow_unauthenticated = true "
                 "to run it without authentication");
}

LoadResult Loader::run(const toml::table& root) {
  cfg_.path = file_;
  check_keys(root, "", {"node", "bfd", "discovery", "metrics", "link", "peer"});
  load_node(root);
  load_bfd(root);
  load_discovery(root);
  load_metrics(root);
  // Links before peers: a via must name a link wherever the two appear.
  if (auto links = tables(root, "link", true))
    for (size_t i = 0; i < links->size(); i++)
      load_link(*links->get(i)->as_table(), index("link", i));
  if (auto peers = tables(root, "peer", false))
    for (size_t i = 0; i < peers->size(); i++)
      load_peer(*peers->get(i)->as_table(), index("peer", i));
  check_whole(root);
  if (auto e = earliest(errors_)) return {std::nullopt, *e};
  if (auto e = earliest(missing_errors_)) return {std::nullopt, *e};
  if (auto e = earliest(relation_errors_)) return {std::nullopt, *e};
  return {std::move(cfg_), std::nullopt};
}

LoadResult file_error(const std::string& path, std::string message) {
  return {std::nullopt, ConfigError{path, 0, 0, "", std::move(message)}};
}

LoadResult parse_document(const std::string& text, const std::string& path) {
#if TOML_EXCEPTIONS
  try {
    toml::table root = toml::parse(text, std::string_view(path));
    return Loader(path).run(root);
  } catch (const toml::parse_error& e) {
    return {std::nullopt, make_error(path, e.source(), "", std::string(e.description()))};
  }
#else
  toml::parse_result res = toml::parse(text, std::string_view(path));
  if (!res)
    return {std::nullopt,
            make_error(path, res.error().source(), "", std::string(res.error().description()))};
  return Loader(path).run(res.table());
#endif
}

Result<std::string> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return os_error("cannot open", errno);
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  int err = std::ferror(f) ? errno : 0;  // e.g. EISDIR
  std::fclose(f);
  if (err) return os_error("cannot read", err);
  return text;
}

}  // namespace

std::string ConfigError::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  if (line > 0 && column > 0) out += ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

LoadResult parse(const std::string& text, const std::string& path) {
  try {
    return parse_document(text, path);
  } catch (const std::exception& e) {  // e.g. bad_alloc: callers rely on no exceptions
    return file_error(path, e.what());
  }
}

LoadResult load(const std::string& path) {
  try {
    Result<std::string> text = read_file(path);
    if (!text) return file_error(path, text.error().message);
    return parse(*text, path);
  } catch (const std::exception& e) {
    return file_error(path, e.what());
  }
}

std::optional<ConfigError> check_devices(const Config& cfg, const DeviceExists& exists) {
  for (size_t i = 0; i < cfg.links.size(); i++) {
    const Link& l = cfg.links[i];
    if (!exists(l.device))
      return ConfigError{cfg.path, l.line, 0, index("link", i) + ".device",
                         "network device " + quoted(l.device) + " does not exist"};
  }
  return std::nullopt;
}

// What a reload may change: [[link]], [[peer]], node.hash, spread,
// flowlet_gap_us and socket_queue_limit. The rest shapes
// sockets, the ML device, the pins or the sessions' timers and keys, which
// only a restart rebuilds cleanly.
std::optional<ConfigError> restart_only_change(const Config& running, const Config& next) {
  struct Item {
    bool changed;
    int line;
    const char* key;
  };
  const Node &a = running.node, &b = next.node;
  const Bfd &fa = running.bfd, &fb = next.bfd;
  const Discovery &da = running.discovery, &db = next.discovery;
  const Item items[] = {
      {a.id != b.id, b.line, "node.id"},
      {a.ml_address != b.ml_address, b.line, "node.ml_address"},
      {a.ml_device != b.ml_device, b.line, "node.ml_device"},
      {a.rx_mode != b.rx_mode, b.line, "node.rx_mode"},
      {a.bpffs != b.bpffs, b.line, "node.bpffs"},
      {a.max_peers != b.max_peers, b.line, "node.max_peers"},
      {fa.enabled != fb.enabled, fb.line, "bfd"},
      {fa.interval_ms != fb.interval_ms, fb.line, "bfd.interval_ms"},
      {fa.multiplier != fb.multiplier, fb.line, "bfd.multiplier"},
      {fa.keys.empty() != fb.keys.empty(), fb.line, "bfd.key_file"},  // auth on or off
      {fa.allow_unauthenticated != fb.allow_unauthenticated, fb.line, "bfd.allow_unauthenticated"},
      {fa.echo != fb.echo, fb.line, "bfd.echo"},
      {da.enabled != db.enabled, db.line, "discovery"},
      {da.port != db.port, db.line, "discovery.port"},
      {da.group4 != db.group4, db.line, "discovery.group4"},
      {da.group6 != db.group6, db.line, "discovery.group6"},
      {da.hello_interval_ms != db.hello_interval_ms, db.line, "discovery.hello_interval_ms"},
      {running.metrics.listen != next.metrics.listen, next.metrics.line, "metrics.listen"},
  };
  for (const auto& i : items)
    if (i.changed)
      return ConfigError{next.path, i.line, 0, i.key,
                         "changed, but takes effect only when mlinkd restarts; the running "
                         "configuration is kept"};
  return std::nullopt;
}

const char* to_string(HashPolicy p) {
  return enum_text(kHashNames, p);
}
const char* to_string(Spread s) {
  return enum_text(kSpreadNames, s);
}
const char* to_string(RxMode m) {
  return enum_text(kRxModeNames, m);
}

}  // namespace mlink::config
