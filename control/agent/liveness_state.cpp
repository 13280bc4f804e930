// liveness_state.cpp - the state a restarted agent resumes its BFD sessions
// from (docs/PROTOCOL.md, "Restart"): written once, kSaveDelayUsec after a
// session changed, for all that changed meanwhile; read at start.
#include <systemd/sd-event.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/liveness.h"
#include "common/log.h"

namespace mlink::agent {
namespace {

// The auth sequence resumes this far above what was saved: more than the
// packets sent between two checkpoints (every second).
constexpr uint32_t kSeqResumeMargin = 1u << 22;
constexpr uint32_t kSeqCheckpoint = 1u << 16;

}  // namespace

int Liveness::on_save_timer(sd_event_source*, uint64_t, void* self) {
  auto* l = static_cast<Liveness*>(self);
  l->save_pending_ = false;
  l->save_state();
  return 0;
}

void Liveness::state_changed() {
  if (!save_timer_) return save_state();  // not on a loop (tests): at once
  if (save_pending_) return;
  save_pending_ = true;
  sd_event_source_set_time(save_timer_, now() + kSaveDelayUsec);
  sd_event_source_set_enabled(save_timer_, SD_EVENT_ONESHOT);
}

void Liveness::load_state() {
  if (state_path_.empty()) return;
  std::ifstream in(state_path_);
  if (!in) return;
  try {
    auto j = nlohmann::json::parse(in);
    if (!keys_.keys.empty()) tx_seq_ = j.at("tx_seq").get<uint32_t>() + kSeqResumeMargin;
    for (const auto& s : j.at("sessions")) {
      auto local = IpAddr::parse(s.at("local").get<std::string>());
      auto remote = IpAddr::parse(s.at("remote").get<std::string>());
      if (!local || !remote) continue;
      Saved v;
      v.snap.my_disc = s.at("my_disc");
      v.snap.remote_disc = s.at("remote_disc");
      v.snap.remote_detect_mult = s.at("remote_detect_mult");
      v.snap.remote_min_rx_us = s.at("remote_min_rx_us");
      v.snap.remote_desired_tx_us = s.at("remote_desired_tx_us");
      v.remote_echo_rx_us = s.at("remote_echo_rx_us");
      saved_[{s.at("device").get<std::string>(), *local, *remote}] = v;
    }
    log::info("BFD: {} sessions of the previous agent to resume", saved_.size());
  } catch (const std::exception& e) {
    log::warn("BFD state {}: {}; starting afresh", state_path_, e.what());
    saved_.clear();
  }
  saved_seq_ = tx_seq_;
}

void Liveness::save_state() {
  if (state_path_.empty()) return;
  nlohmann::json sessions = nlohmann::json::array();
  for (const auto& [id, e] : entries_) {
    if (e.session.state() != bfd::State::Up) continue;
    auto s = e.session.snapshot();
    sessions.push_back({{"device", e.target.device},
                        {"local", e.target.local.str()},
                        {"remote", e.target.remote.str()},
                        {"my_disc", s.my_disc},
                        {"remote_disc", s.remote_disc},
                        {"remote_detect_mult", s.remote_detect_mult},
                        {"remote_min_rx_us", s.remote_min_rx_us},
                        {"remote_desired_tx_us", s.remote_desired_tx_us},
                        {"remote_echo_rx_us", e.remote_echo_rx_us}});
  }
  nlohmann::json j{{"tx_seq", tx_seq_}, {"sessions", sessions}};
  std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out) {
      log::warn("write {}: failed", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), state_path_.c_str()) != 0)
    log::warn("rename {}: {}", tmp, strerror(errno));
  saved_seq_ = tx_seq_;
}

void Liveness::checkpoint() {
  if (tx_seq_ - saved_seq_ >= kSeqCheckpoint) save_state();
}

void Liveness::forget_state() {
  if (!state_path_.empty()) std::remove(state_path_.c_str());
  state_path_.clear();
}

}  // namespace mlink::agent
