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

const char* ingress_label(unsigned counter) {
  static const char* const labels[] = {
#define ML_X_LABEL(name, label, desc) label,
      ML_INGRESS_COUNTERS(ML_X_LABEL)
#undef ML_X_LABEL
  };
  return counter < ML_IN_MAX ? labels[counter] : "unknown";
}

ml_bfd_key bfd_key(int ifindex, const IpAddr& local, const IpAddr& remote) {
  ml_bfd_key k{};
  k.ifindex = static_cast<__u32>(ifindex);
  k.family = static_cast<__u8>(local.family);
  std::memcpy(k.local, to_key(local).addr, sizeof(k.local));
  std::memcpy(k.remote, to_key(remote).addr, sizeof(k.remote));
  return k;
}

bool BfdKeyLess::operator()(const ml_bfd_key& a, const ml_bfd_key& b) const {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

}  // namespace mlink::datapath
