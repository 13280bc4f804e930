// Must not compile: linkset depends on no other module (tests/CMakeLists.txt,
// test "layering"). If this builds, the include roots no longer keep layers apart.
#include "agent/agent.h"
