// keyfile.h - the shared-secret files of mlink's two protocols.
//
// One key per line: "<id> <hex bytes>", '#' starts a comment. Receivers
// accept every key in the file; senders sign with the highest id unless the
// config names one, so a rotation is: add the new key on every host, then
// make it the sender's (or remove the old one). The file must not be
// readable by group or others, like an ssh private key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace mlink {

struct KeyFileRules {
  uint32_t max_id = 0;  // ids 0..max_id
  size_t min_len = 0;   // key bytes
  size_t max_len = 0;
  bool check_mode = true;  // refuse a file that group or others can read
};

using KeyMap = std::map<uint32_t, std::vector<uint8_t>>;

// The two protocols' files. BFD (Meticulous Keyed SHA1, RFC 5880 §6.7.4): a
// one-byte key id, up to 20 bytes of key. Topology (HMAC-SHA-512-256,
// docs/PROTOCOL.md): a 16-bit key id, 32 bytes.
inline constexpr KeyFileRules kBfdKeyRules{.max_id = 255, .min_len = 1, .max_len = 20};
inline constexpr KeyFileRules kTopoKeyRules{.max_id = 65535, .min_len = 32, .max_len = 32};

// Errors read "PATH:LINE: message" (LINE omitted when the whole file is wrong).
Result<KeyMap> read_key_file(const std::string& path, const KeyFileRules& rules);

}  // namespace mlink
