#include "ctl/commands.h"

namespace mlink::ctl {

namespace {

// link set / link add: the link's run-time policy.
std::vector<Field> link_policy() {
  return {{"link", Type::String, true},
          {"weight", Type::Uint},
          {"backup", Type::Bool},
          {"drain", Type::Bool}};
}

}  // namespace

std::span<const Command> agent_commands() {
  static const std::vector<Command> commands{
      {"show", {}},
      {"show peers", {}},
      {"show links", {}},
      {"show drops", {}},
      {"monitor", {}},
      {"reload", {}},
      {"flow get",
       {{"dst", Type::String, true},
        {"src", Type::String},
        {"proto", Type::String},
        {"sport", Type::Uint},
        {"dport", Type::Uint}}},
      {"link set", link_policy()},
      {"link add", link_policy()},
      {"link del", {{"link", Type::String, true}}},
  };
  return commands;
}

}  // namespace mlink::ctl
