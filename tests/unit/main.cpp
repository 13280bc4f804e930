#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "common/log.h"

// The agent's parts log as they would in mlinkd; the tests check what they
// write, so only warnings and errors are shown (MLINK_TEST_LOG=debug for all).
int main(int argc, char** argv) {
  const char* want = std::getenv("MLINK_TEST_LOG");
  mlink::log::set_level(want && std::string(want) == "debug" ? mlink::log::Level::Debug
                                                             : mlink::log::Level::Warning);
  return doctest::Context(argc, argv).run();
}
