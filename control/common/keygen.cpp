#include "common/keygen.h"

#include <sys/random.h>

#include <cerrno>

namespace mlink {

std::string key_line(uint32_t id, const std::vector<uint8_t>& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string line = std::to_string(id) + " ";
  for (uint8_t b : key) {
    line += kHex[b >> 4];
    line += kHex[b & 0x0f];
  }
  return line + "\n";
}

Result<std::string> generate_key_line(const KeyFileRules& rules, uint32_t id) {
  if (id > rules.max_id)
    return Error{"key id must be 0.." + std::to_string(rules.max_id) + ", got " +
                 std::to_string(id)};
  std::vector<uint8_t> key(rules.max_len);
  for (size_t got = 0; got < key.size();) {
    ssize_t n = getrandom(key.data() + got, key.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error("getrandom", errno);
    got += static_cast<size_t>(n);
  }
  return key_line(id, key);
}

}  // namespace mlink
