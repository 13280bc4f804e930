// commands.h - every request mlinkd answers on its control socket and the
// fields each takes (docs/OPERATIONS.md, "The control socket").
#pragma once

#include <span>

#include "ctl/request.h"

namespace mlink::ctl {

std::span<const Command> agent_commands();

}  // namespace mlink::ctl
