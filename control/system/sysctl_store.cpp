#include "system/sysctl_store.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/log.h"

namespace mlink {

SysctlStore::SysctlStore(std::string file, std::string root)
    : file_(std::move(file)), root_(std::move(root)) {}

Result<std::unique_ptr<SysctlStore>> SysctlStore::open(std::string file, std::string root) {
  std::unique_ptr<SysctlStore> s(new SysctlStore(std::move(file), std::move(root)));
  if (access(s->file_.c_str(), F_OK) != 0) {
    if (errno == ENOENT) return s;
    return os_error("read " + s->file_, errno);
  }
  std::ifstream in(s->file_);
  if (!in) return Error{"read " + s->file_ + ": cannot open"};
  try {
    auto j = nlohmann::json::parse(in);
    for (const auto& [path, value] : j.at("originals").items())
      s->originals_[path] = value.get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return Error{s->file_ + ": " + e.what() +
                 " (the sysctl values before mlink are lost; remove the file to start)"};
  }
  if (!s->originals_.empty())
    log::info("{}: {} sysctl originals kept by an agent that did not stop cleanly", s->file_,
              s->originals_.size());
  return s;
}

Status SysctlStore::save() const {
  if (originals_.empty()) {
    if (unlink(file_.c_str()) != 0 && errno != ENOENT) return os_error("remove " + file_, errno);
    return {};
  }
  nlohmann::json j{{"originals", originals_}};
  std::string tmp = file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    out.flush();
    if (!out) return Error{"write " + tmp + ": failed"};
  }
  // /run is tmpfs: no fsync, rename alone keeps the file whole across a kill.
  if (std::rename(tmp.c_str(), file_.c_str()) != 0) return os_error("rename " + tmp, errno);
  return {};
}

Result<std::string> SysctlStore::set(const std::string& path, const std::string& value) {
  bool recorded = originals_.count(path) != 0;
  if (!recorded) {
    auto cur = sysctl_read(path, root_);
    if (!cur) return cur.error();
    originals_[path] = *cur;
    if (auto s = save(); !s) {
      originals_.erase(path);
      return Error{"keep the original of sysctl " + path + ": " + s.error().message};
    }
  }
  if (auto s = sysctl_write(path, value, root_); !s) {
    if (!recorded) {
      originals_.erase(path);
      (void)save();
    }
    return s.error();
  }
  claimed_.insert(path);
  return originals_.at(path);
}

void SysctlStore::restore(const std::string& path) {
  auto it = originals_.find(path);
  if (it == originals_.end()) return;
  claimed_.erase(path);
  if (auto s = sysctl_write(path, it->second, root_); !s && s.error().err != ENOENT) {
    log::warn("restore sysctl: {} (kept in {})", s.error().message, file_);
    return;
  }
  originals_.erase(it);
  if (auto s = save(); !s) log::warn("{}", s.error().message);
}

size_t SysctlStore::restore_unclaimed() {
  std::vector<std::string> paths;
  for (const auto& [path, value] : originals_)
    if (!claimed_.count(path)) paths.push_back(path);
  for (const auto& p : paths) {
    log::info("sysctl {}: restored to {} (no longer set by this configuration)", p,
              originals_.at(p));
    restore(p);
  }
  return paths.size();
}

size_t SysctlStore::restore_all() {
  std::vector<std::string> paths;
  for (const auto& [path, value] : originals_) paths.push_back(path);
  for (const auto& p : paths) restore(p);
  return paths.size();
}

}  // namespace mlink
