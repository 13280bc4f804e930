// hex_vectors.h - reads the protocol test vectors in proto/vectors/<proto>/*.hex:
// hex digits, whitespace ignored, '#' to the end of a line is a comment.
#pragma once

#include <doctest/doctest.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mlink::testing {

inline std::filesystem::path vector_dir(const std::string& proto) {
  return std::filesystem::path(__FILE__).parent_path() / "../../proto/vectors" / proto;
}

inline std::vector<uint8_t> read_hex(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot open " << path);
  std::string digits, line;
  while (std::getline(in, line)) {
    line = line.substr(0, line.find('#'));
    for (char c : line)
      if (!std::isspace(static_cast<unsigned char>(c))) digits += c;
  }
  REQUIRE_MESSAGE(digits.size() % 2 == 0, path << ": odd number of hex digits");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < digits.size(); i += 2) {
    REQUIRE_MESSAGE(std::isxdigit(static_cast<unsigned char>(digits[i])), path);
    REQUIRE_MESSAGE(std::isxdigit(static_cast<unsigned char>(digits[i + 1])), path);
    out.push_back(static_cast<uint8_t>(std::stoul(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

}  // namespace mlink::testing
