#include "datapath/datapath.h"

#include <sys/socket.h>

#include <cstring>

namespace mlink::datapath {

ml_addr to_key(const IpAddr& a) {
  ml_addr k{};
  k.family = static_cast<uint8_t>(a.family);
  std::memcpy(k.addr, a.bytes.data(), a.size());
  return k;
}

IpAddr from_key(const ml_addr& k) {
  IpAddr a;
  a.family = k.family;
  std::memcpy(a.bytes.data(), k.addr, a.size());
  return a;
}

const char* drop_label(unsigned reason) {
  static const char* const labels[] = {
#define ML_X_LABEL(name, label, desc) label,
      ML_DROP_REASONS(ML_X_LABEL)
#undef ML_X_LABEL
  };
  return reason < ML_DROP_MAX ? labels[reason] : "unknown";
}

}  // namespace mlink::datapath
