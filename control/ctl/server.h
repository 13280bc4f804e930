// server.h - the agent's control socket: JSON lines over a Unix stream socket.
//
// One request per line, one reply line per request, in order:
//   {"cmd": "show peers", ...}  ->  {"ok": true, "result": ...}
//                                   {"ok": false, "error": "..."}
// {"cmd": "monitor"} also subscribes the connection to events: after its
// reply, every publish()ed event follows as one line {"event": ...}.
//
// Many clients at once, all on the agent's event loop, never blocking it: a
// client's replies and events are queued and written as its socket accepts
// them; a client that lets more than kMaxQueued bytes pile up (a stalled
// `mlinkctl monitor`) is disconnected and counted, never waited for. The
// socket is mode 0600 in a root-only directory: the kernel's permission
// check is the authentication.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "ctl/request.h"

struct sd_event;
struct sd_event_source;

namespace mlink::ctl {

class Server {
 public:
  static constexpr size_t kMaxLine = 64 * 1024;          // a request longer than this is an error
  static constexpr size_t kMaxQueued = 4 * 1024 * 1024;  // per client, replies + events

  static constexpr size_t kMaxClients = 64;    // more are answered and closed
  static constexpr int kReadsPerCallback = 4;  // of 16 KiB: then the loop runs others
  // Below the protocols (BFD is SD_EVENT_PRIORITY_IMPORTANT, discovery normal):
  // a busy client waits behind them.
  static constexpr int kPriority = 10;

  // Answers one request that matched its command's fields; errors are
  // replies. An exception it lets out is caught, logged and answered as an
  // internal error, and the agent goes on.
  using Handler = std::function<nlohmann::json(const Request& request)>;

  // Binds `path` (replacing a stale socket, refusing a live one) and listens
  // for requests of `commands`; anything else is refused with an error reply.
  static Result<std::unique_ptr<Server>> listen(const std::string& path,
                                                std::span<const Command> commands, Handler handler);
  // Whether an agent accepts connections on `path` (a running agent, not the
  // file a killed one left).
  static bool in_use(const std::string& path);
  ~Server();  // closes every connection and removes the socket file
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status attach(sd_event* loop);
  void publish(const nlohmann::json& event);  // to every monitor connection

  size_t clients() const { return clients_.size(); }
  uint64_t clients_dropped() const { return dropped_; }   // for being too slow or too many
  uint64_t requests_refused() const { return refused_; }  // malformed, unknown, oversize
  uint64_t requests_failed() const { return failed_; }    // the handler threw
  const std::string& path() const { return path_; }

 private:
  struct Client {
    int fd = -1;
    sd_event_source* src = nullptr;
    std::string in;
    std::string out;
    bool monitor = false;
  };
  Server(int fd, std::string path, std::span<const Command> commands, Handler handler);
  static int on_accept(sd_event_source*, int, uint32_t, void*);
  static int on_client(sd_event_source*, int fd, uint32_t events, void*);
  void accept_all();
  void read_from(Client& c);
  void handle_lines(Client& c);
  void handle_line(Client& c, const std::string& line);
  void queue(Client& c, const nlohmann::json& msg);
  void flush(Client& c);
  void close_client(int fd);
  void close_marked();  // every client whose fd was set to -1

  int fd_ = -1;
  std::string path_;
  std::span<const Command> commands_;
  Handler handler_;
  sd_event* loop_ = nullptr;
  sd_event_source* listen_src_ = nullptr;
  std::map<int, std::unique_ptr<Client>> clients_;  // by fd
  uint64_t dropped_ = 0;
  uint64_t refused_ = 0;
  uint64_t failed_ = 0;
  bool dispatching_ = false;  // inside on_client: closing waits
};

}  // namespace mlink::ctl
