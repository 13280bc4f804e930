// request.h - a control request, checked against the table of commands
// before any handler reads it. Unknown commands, unknown keys, missing keys
// and wrong types are refused here with an error that names them, so a
// handler only reads fields of the declared type and nothing it does with a
// request can throw.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mlink::ctl {

enum class Type { String, Bool, Uint };

struct Field {
  std::string_view key;
  Type type;
  bool required = false;
};

struct Command {
  std::string_view name;
  std::vector<Field> fields;  // besides "cmd"
};

class Request {
 public:
  // One line as a request for one of `commands`, or the error to reply with.
  static std::variant<Request, std::string> parse(std::string_view line,
                                                  std::span<const Command> commands);

  const std::string& cmd() const { return cmd_; }
  bool has(std::string_view key) const;
  // The field's value, or the fallback when absent (or, if a handler asks for
  // a field its command does not declare, of another type).
  std::string text(std::string_view key, std::string fallback = "") const;
  std::optional<uint64_t> number(std::string_view key) const;
  std::optional<bool> flag(std::string_view key) const;

 private:
  Request(std::string cmd, nlohmann::json body) : cmd_(std::move(cmd)), body_(std::move(body)) {}
  const nlohmann::json* field(std::string_view key) const;

  std::string cmd_;
  nlohmann::json body_;  // an object whose fields match the command's table
};

}  // namespace mlink::ctl
