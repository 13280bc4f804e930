#include "ctl/request.h"

#include <algorithm>

namespace mlink::ctl {

namespace {

using nlohmann::json;

const char* type_name(Type t) {
  switch (t) {
    case Type::String:
      return "a string";
    case Type::Bool:
      return "true or false";
    case Type::Uint:
      return "an unsigned integer";
  }
  return "?";
}

bool has_type(const json& v, Type t) {
  switch (t) {
    case Type::String:
      return v.is_string();
    case Type::Bool:
      return v.is_boolean();
    case Type::Uint:
      return v.is_number_unsigned();
  }
  return false;
}

}  // namespace

std::variant<Request, std::string> Request::parse(std::string_view line,
                                                  std::span<const Command> commands) {
  json req = json::parse(line.begin(), line.end(), nullptr, false);
  if (req.is_discarded() || !req.is_object()) return std::string("not a JSON object");
  auto cmd = req.find("cmd");
  if (cmd == req.end() || !cmd->is_string())
    return std::string("not a JSON object with a string \"cmd\"");
  const std::string name = cmd->get<std::string>();
  auto c = std::find_if(commands.begin(), commands.end(),
                        [&](const Command& x) { return x.name == name; });
  if (c == commands.end()) return "unknown command '" + name + "'";
  for (const auto& item : req.items()) {
    const std::string& key = item.key();
    const json& value = item.value();
    if (key == "cmd") continue;
    auto f = std::find_if(c->fields.begin(), c->fields.end(),
                          [&](const Field& x) { return x.key == key; });
    if (f == c->fields.end()) return name + ": unknown key \"" + key + "\"";
    if (!has_type(value, f->type)) return name + ": \"" + key + "\" must be " + type_name(f->type);
  }
  for (const Field& f : c->fields)
    if (f.required && !req.contains(f.key))
      return name + ": \"" + std::string(f.key) + "\" is missing";
  req.erase("cmd");
  return Request(name, std::move(req));
}

const json* Request::field(std::string_view key) const {
  auto it = body_.find(key);
  return it == body_.end() ? nullptr : &*it;
}

bool Request::has(std::string_view key) const {
  return field(key) != nullptr;
}

std::string Request::text(std::string_view key, std::string fallback) const {
  const json* v = field(key);
  return v && v->is_string() ? v->get<std::string>() : fallback;
}

std::optional<uint64_t> Request::number(std::string_view key) const {
  const json* v = field(key);
  if (!v || !v->is_number_unsigned()) return std::nullopt;
  return v->get<uint64_t>();
}

std::optional<bool> Request::flag(std::string_view key) const {
  const json* v = field(key);
  if (!v || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}

}  // namespace mlink::ctl
