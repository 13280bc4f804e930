// neighbours.h - the managed neighbour entries of every peer's next hops.
//
// A managed entry (NTF_EXT_MANAGED) makes the kernel resolve the next hop at
// once and keep it resolved, so no packet ever waits behind an INCOMPLETE
// entry (docs/FINDINGS.md, "Managed neighbour entries"). This set owns the
// entries it adds: they are deleted when it goes, and a slot is used only
// while its entry is usable.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "common/ip.h"
#include "common/result.h"

namespace mlink::nl {
class Rtnl;
struct NeighEvent;
}  // namespace mlink::nl

namespace mlink::agent {

struct NeighKey {
  int ifindex = 0;
  IpAddr addr;
  auto operator<=>(const NeighKey&) const = default;
};

// The kernel's neighbour table, as far as the set needs it (a fake in tests).
class NeighbourOps {
 public:
  virtual ~NeighbourOps() = default;
  virtual Status add_managed(const NeighKey& n) = 0;
  virtual Status remove(const NeighKey& n) = 0;
  virtual std::optional<uint16_t> state(const NeighKey& n) = 0;  // NUD_*; nullopt: no entry
  // Every entry's NUD state, read at once (one dump, not one request each).
  virtual Result<std::map<NeighKey, uint16_t>> states() = 0;
};

class RtnlNeighbours final : public NeighbourOps {
 public:
  explicit RtnlNeighbours(nl::Rtnl& rtnl) : rtnl_(rtnl) {}
  Status add_managed(const NeighKey& n) override;
  Status remove(const NeighKey& n) override;
  std::optional<uint16_t> state(const NeighKey& n) override;
  Result<std::map<NeighKey, uint16_t>> states() override;

 private:
  nl::Rtnl& rtnl_;
};

class ManagedNeighbours {
 public:
  explicit ManagedNeighbours(NeighbourOps& ops) : ops_(ops) {}
  ~ManagedNeighbours();  // deletes every entry it added
  ManagedNeighbours(const ManagedNeighbours&) = delete;
  ManagedNeighbours& operator=(const ManagedNeighbours&) = delete;

  // Adds the entries in want that are missing, deletes those no longer wanted.
  void sync(const std::set<NeighKey>& want);
  // A neighbour event; true when it is one of ours (its state is now known).
  bool on_event(const nl::NeighEvent& ev);
  bool usable(const NeighKey& n) const;
  // Re-reads every entry (one dump) and re-adds one that someone deleted
  // (`ip neigh flush`).
  void resync();
  // Deletes and re-adds the entries on ifindex (only its unresolved IPv6
  // ones with unresolved_v6_only), which frees the packets they hold and
  // starts resolution anew. Returns how many.
  size_t renew(int ifindex, bool unresolved_v6_only);
  const std::map<NeighKey, uint16_t>& entries() const { return nud_; }

 private:
  void add(const NeighKey& n);
  NeighbourOps& ops_;
  std::map<NeighKey, uint16_t> nud_;  // NUD state, 0 while unknown
};

}  // namespace mlink::agent
