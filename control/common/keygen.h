// keygen.h - new keys for the key files of keyfile.h (`mlinkctl keygen`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/keyfile.h"
#include "common/result.h"

namespace mlink {

// "<id> <hex>\n": one line of a key file, as read_key_file() reads it.
std::string key_line(uint32_t id, const std::vector<uint8_t>& key);

// A key line with rules.max_len random bytes from the kernel's CSPRNG
// (getrandom(2), which waits until it is seeded). The id must be in
// 0..rules.max_id.
Result<std::string> generate_key_line(const KeyFileRules& rules, uint32_t id);

}  // namespace mlink
