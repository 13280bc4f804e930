#include "common/result.h"

#include <cstdlib>
#include <cstring>

namespace mlink {

Error os_error(std::string what, int err) {
  err = std::abs(err);
  return Error{what + ": " + std::strerror(err), err};
}

}  // namespace mlink
