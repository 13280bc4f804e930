// DepartureRun (packets.h): ml_departure in front of another program.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "bpf/packets.h"
#include "ml_departure.skel.h"

namespace mlink::bpftest {

DepartureRun::DepartureRun(int next_prog_fd) : skel_(ml_departure_bpf::open_and_load()) {
  if (!skel_) throw std::runtime_error("load ml_departure skeleton");
  uint32_t key = 0;
  if (int err = bpf_map_update_elem(bpf_map__fd(skel_->maps.ml_departure_next), &key, &next_prog_fd,
                                    BPF_ANY)) {
    ml_departure_bpf::destroy(skel_);
    throw std::runtime_error(std::string("ml_departure_next: ") + std::strerror(-err));
  }
}

DepartureRun::~DepartureRun() {
  ml_departure_bpf::destroy(skel_);
}

RunResult DepartureRun::run(std::span<const uint8_t> pkt, uint64_t departure_ns,
                            uint32_t repeat) const {
  skel_->bss->departure_ns = departure_ns;
  return test_run(bpf_program__fd(skel_->progs.ml_departure), pkt, repeat);
}

}  // namespace mlink::bpftest
