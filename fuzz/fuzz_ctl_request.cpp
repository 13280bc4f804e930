// fuzz_ctl_request - control socket requests (ctl/request.h) against the
// agent's command table (ctl/commands.cpp). Each input is one line. A request
// that parses names a known command, carries every required field and only
// declared ones, each of its declared type; every accessor a handler may
// call, on any key, returns without throwing (an exception out of a handler
// once ended mlinkd).
// seeds: fuzz/seeds/fuzz_ctl_request
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "ctl/commands.h"

using namespace mlink::ctl;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_ctl_request: %s\n", what);
  std::abort();
}

void check(const Request& r) {
  const auto commands = agent_commands();
  const Command* c = nullptr;
  for (const auto& x : commands)
    if (x.name == r.cmd()) c = &x;
  if (!c) fail("accepted an unknown command");
  for (const Field& f : c->fields) {
    if (f.required && !r.has(f.key)) fail("accepted a request without a required field");
    if (!r.has(f.key)) continue;
    bool typed = (f.type == Type::String && r.text(f.key, "\x01") != "\x01") ||
                 (f.type == Type::Bool && r.flag(f.key)) ||
                 (f.type == Type::Uint && r.number(f.key));
    if (!typed) fail("a field is not of its declared type");
  }
  // What a handler reads, on declared keys and others: never an exception.
  for (std::string_view key :
       {"link", "dst", "src", "proto", "weight", "backup", "drain", "sport", "dport", "cmd", ""}) {
    (void)r.text(key);
    (void)r.number(key);
    (void)r.flag(key);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  try {
    auto parsed = Request::parse(line, agent_commands());
    if (auto* r = std::get_if<Request>(&parsed)) check(*r);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  return 0;
}
