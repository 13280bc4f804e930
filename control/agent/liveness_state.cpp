// liveness_state.cpp - the state a restarted agent resumes its BFD sessions
// from (docs/PROTOCOL.md, "Restart"): written once, kSaveDelayUsec after a
// session changed, for all that changed meanwhile; read at start.
#include <fmt/format.h>
#include <systemd/sd-event.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "agent/liveness.h"
#include "common/log.h"

namespace mlink::agent {
namespace {

// The peer accepts 3 × our Detect Mult numbers above the last it saw (RFC 5880 §6.7.3), so
// a resumed session must not jump far. It carries on above what was saved by what may have
// been sent between that save and the end of the previous agent: one checkpoint's worth at
// the session's rate (jitter sends up to 1/0.75 as often), and one Poll/Final more.
uint32_t resume_margin(uint64_t tx_interval_us) {
  if (!tx_interval_us) return 1;
  return static_cast<uint32_t>(2 + (Liveness::kCheckpointUsec * 4 + tx_interval_us * 3 - 1) /
                                       (tx_interval_us * 3));
}

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
  size_t resumable = 0;
  try {
    auto j = nlohmann::json::parse(in);
    for (const auto& s : j.at("sessions")) {
      auto local = IpAddr::parse(s.at("local").get<std::string>());
      auto remote = IpAddr::parse(s.at("remote").get<std::string>());
      if (!local || !remote) continue;
      Saved v;
      v.resume = s.value("resume", true) && opts_resume_;
      v.snap.my_disc = s.at("my_disc");
      v.snap.remote_disc = s.at("remote_disc");
      v.snap.remote_detect_mult = s.at("remote_detect_mult");
      v.snap.remote_min_rx_us = s.at("remote_min_rx_us");
      v.snap.remote_desired_tx_us = s.at("remote_desired_tx_us");
      v.remote_echo_rx_us = s.at("remote_echo_rx_us");
      if (s.contains("tx_seq")) v.tx_seq = s.at("tx_seq").get<uint32_t>();
      v.tx_interval_us = s.value("tx_interval_us", uint64_t{0});
      if (s.contains("rx_seq")) {
        v.rx_seq = s.at("rx_seq").get<uint32_t>();
        v.rx_forget_at_us = s.at("rx_forget_at_us").get<uint64_t>();
      }
      resumable += v.resume;
      saved_[{s.at("device").get<std::string>(), *local, *remote}] = v;
    }
    log::info("BFD: {} sessions of the previous agent to resume, {} sequence numbers to keep",
              resumable, saved_.size());
  } catch (const std::exception& e) {
    log::warn("BFD state {}: {}; starting afresh", state_path_, e.what());
    saved_.clear();
  }
}

// The sequence numbers go on where the previous agent left them: ours stays in the peer's
// window, and the peer's packets that agent accepted are still replays to this one.
void Liveness::restore(Entry& e, const Saved& s, uint64_t t) {
  if (s.tx_seq) e.tx_seq = *s.tx_seq + (s.resume ? resume_margin(s.tx_interval_us) : 0);
  if (s.rx_seq && s.rx_forget_at_us > t) e.rx_auth.restore(*s.rx_seq, t, s.rx_forget_at_us - t);
}

// Written every checkpoint (1 s) while packets go out: with 4,000 sessions a JSON document
// built as nlohmann objects cost 17 µs a session (17 % of the agent, measured at 1,000
// peers), so the text is formatted directly; load_state() reads it with nlohmann.
void Liveness::save_state() {
  if (state_path_.empty()) return;
  uint64_t t = now();
  std::string text = "{\"sessions\":[";
  text.reserve(entries_.size() * 320);
  auto out = std::back_inserter(text);
  bool first = true;
  for (const auto& [id, e] : entries_) {
    bool up = e.session.state() == bfd::State::Up;
    auto rx = e.rx_auth.known(t);
    if (!up && !rx && keys_.keys.empty()) continue;  // nothing worth keeping
    auto s = e.session.snapshot();
    // A device name may hold any byte but '/', NUL and white space: quoted by nlohmann.
    fmt::format_to(out,
                   "{}{{\"device\":{},\"local\":\"{}\",\"remote\":\"{}\",\"resume\":{},"
                   "\"my_disc\":{},\"remote_disc\":{},\"remote_detect_mult\":{},"
                   "\"remote_min_rx_us\":{},\"remote_desired_tx_us\":{},"
                   "\"remote_echo_rx_us\":{}",
                   first ? "" : ",", nlohmann::json(e.target.device).dump(), e.target.local.str(),
                   e.target.remote.str(), up && !clean_stop_, s.my_disc, s.remote_disc,
                   s.remote_detect_mult, s.remote_min_rx_us, s.remote_desired_tx_us,
                   e.remote_echo_rx_us);
    if (!keys_.keys.empty())
      fmt::format_to(out, ",\"tx_seq\":{},\"tx_interval_us\":{}", e.tx_seq,
                     e.session.tx_interval_us());
    if (rx)
      fmt::format_to(out, ",\"rx_seq\":{},\"rx_forget_at_us\":{}", *rx, e.rx_auth.forget_at_us());
    text += '}';
    first = false;
  }
  text += "]}\n";
  std::string tmp = state_path_ + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    if (!f) {
      log::warn("write {}: failed", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), state_path_.c_str()) != 0)
    log::warn("rename {}: {}", tmp, strerror(errno));
  sent_since_save_ = 0;
}

void Liveness::checkpoint() {
  if (sent_since_save_) save_state();
  // A peer forgets our sequence twice its detection time after our last packet (at most
  // 2 x 255 x 10 s in theory; a minute covers every configuration mlink uses).
  uint64_t t = now();
  std::erase_if(retired_, [t](const auto& kv) { return kv.second.at_us + 60'000'000 < t; });
}

void Liveness::forget_state() {
  clean_stop_ = true;
  save_state();
}

}  // namespace mlink::agent
