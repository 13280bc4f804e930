#include "common/keyfile.h"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace mlink {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<KeyMap> read_key_file(const std::string& path, const KeyFileRules& rules) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return os_error(path, errno);
  if (!S_ISREG(st.st_mode)) return Error{path + ": not a regular file"};
  if (rules.check_mode && (st.st_mode & (S_IRWXG | S_IRWXO))) {
    std::ostringstream mode;
    mode << std::oct << (st.st_mode & 0777);
    return Error{path + ": readable by group or others (mode " + mode.str() + "); chmod 600 it"};
  }
  std::ifstream in(path);
  if (!in) return os_error(path, errno);
  KeyMap keys;
  std::string line;
  for (int n = 1; std::getline(in, line); n++) {
    auto where = path + ":" + std::to_string(n) + ": ";
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::string id_text, hex, extra;
    if (!(fields >> id_text)) continue;  // blank or comment
    if (!(fields >> hex)) return Error{where + "expected \"<id> <hex key>\""};
    if (fields >> extra) return Error{where + "unexpected \"" + extra + "\" after the key"};
    uint64_t id = 0;
    for (char c : id_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || id > rules.max_id)
        return Error{where + "key id must be 0.." + std::to_string(rules.max_id) + ", got \"" +
                     id_text + "\""};
      id = id * 10 + static_cast<uint64_t>(c - '0');
    }
    if (id > rules.max_id)
      return Error{where + "key id must be 0.." + std::to_string(rules.max_id) + ", got " +
                   id_text};
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
      if (hi < 0 || lo < 0) return Error{where + "key is not hexadecimal"};
      bytes.push_back(static_cast<uint8_t>(hi << 4 | lo));
    }
    if (hex.size() % 2) return Error{where + "key has an odd number of hex digits"};
    if (bytes.size() < rules.min_len || bytes.size() > rules.max_len) {
      std::string want = rules.min_len == rules.max_len
                             ? std::to_string(rules.min_len)
                             : std::to_string(rules.min_len) + ".." + std::to_string(rules.max_len);
      return Error{where + "key must be " + want + " bytes, got " + std::to_string(bytes.size())};
    }
    if (!keys.emplace(static_cast<uint32_t>(id), std::move(bytes)).second)
      return Error{where + "duplicate key id " + std::to_string(id)};
  }
  if (keys.empty()) return Error{path + ": no key in the file"};
  return keys;
}

}  // namespace mlink
