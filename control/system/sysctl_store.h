// sysctl_store.h - the values sysctls had before mlinkd changed them, kept in
// a file (/run/mlink/<node>.sysctl.json) so that they outlive the agent.
//
// An agent killed by SIGKILL restores nothing; the next one adopts its
// datapath and would read mlink's own values (rp_filter=2, arp_announce=2) as
// the "originals", so a later clean stop would leave them behind. With the
// store, an original is recorded in the file (tmp + rename: never half
// written) before the sysctl changes, and stays recorded until it is written
// back: a starting agent keeps what the file says, and the last clean stop
// (or `mlinkd --cleanup`) restores it and removes the file.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/result.h"
#include "system/sysctl.h"

namespace mlink {

class SysctlStore {
 public:
  // Reads `file` when it exists (what an agent that died left). A file that
  // does not parse is an error: starting anyway would lose its originals.
  static Result<std::unique_ptr<SysctlStore>> open(std::string file, std::string root = kProcSys);
  SysctlStore(const SysctlStore&) = delete;
  SysctlStore& operator=(const SysctlStore&) = delete;

  // Writes value to path and returns path's original: the recorded one, or
  // the value read now, which is in the file before the sysctl changes.
  Result<std::string> set(const std::string& path, const std::string& value);
  // Writes path's original back and forgets it; the file goes with the last
  // one. A sysctl that is gone (its device removed) is forgotten too; any
  // other failure is logged and the original kept for a later try.
  void restore(const std::string& path);
  // Restores the originals not set() since open(): settings an agent that
  // died made and this one does not (a link left the config meanwhile).
  size_t restore_unclaimed();
  size_t restore_all();  // mlinkd --cleanup

  const std::map<std::string, std::string>& originals() const { return originals_; }
  const std::string& file() const { return file_; }

 private:
  SysctlStore(std::string file, std::string root);
  Status save() const;  // the file holds exactly originals_ (none: no file)
  std::string file_;
  std::string root_;
  std::map<std::string, std::string> originals_;  // path -> value before mlink
  std::set<std::string> claimed_;                 // set() by this process
};

}  // namespace mlink
