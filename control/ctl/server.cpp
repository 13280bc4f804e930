#include "ctl/server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"

namespace mlink::ctl {

namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path))
    return Error{"control socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof(sa.sun_path) - 1) + " bytes"};
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

// Whether an agent answers on path (then it is not ours to replace).
bool someone_listens(const sockaddr_un& sa) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0;
  close(fd);
  return live;
}

}  // namespace

bool Server::in_use(const std::string& path) {
  auto sa = unix_address(path);
  return sa && someone_listens(*sa);
}

Result<std::unique_ptr<Server>> Server::listen(const std::string& path,
                                               std::span<const Command> commands, Handler handler) {
  auto sa = unix_address(path);
  if (!sa) return sa.error();
  if (access(path.c_str(), F_OK) == 0) {
    if (someone_listens(*sa))
      return Error{"control socket " + path + " is in use by another agent"};
    unlink(path.c_str());  // left by an agent that died
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return os_error("control socket", errno);
  // Bind with no permissions for anyone else from the start, not chmod after.
  mode_t old = umask(0177);
  int r = bind(fd, reinterpret_cast<const sockaddr*>(&*sa), sizeof(*sa));
  int err = errno;
  umask(old);
  if (r < 0 || ::listen(fd, 16) < 0) {
    if (r == 0) err = errno;
    close(fd);
    return os_error("bind/listen control socket " + path, err);
  }
  return std::unique_ptr<Server>(new Server(fd, path, commands, std::move(handler)));
}

Server::Server(int fd, std::string path, std::span<const Command> commands, Handler handler)
    : fd_(fd), path_(std::move(path)), commands_(commands), handler_(std::move(handler)) {}

Server::~Server() {
  while (!clients_.empty()) close_client(clients_.begin()->first);
  if (listen_src_) sd_event_source_disable_unref(listen_src_);
  if (fd_ >= 0) {
    close(fd_);
    unlink(path_.c_str());
  }
}

Status Server::attach(sd_event* loop) {
  loop_ = loop;
  if (int r = sd_event_add_io(loop, &listen_src_, fd_, EPOLLIN, on_accept, this); r < 0)
    return os_error("watch control socket", r);
  sd_event_source_set_priority(listen_src_, kPriority);
  return {};
}

int Server::on_accept(sd_event_source*, int, uint32_t, void* self) {
  static_cast<Server*>(self)->accept_all();
  return 0;
}

void Server::accept_all() {
  for (;;) {
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        log::warn("control socket accept: {}", std::strerror(errno));
      return;
    }
    if (clients_.size() >= kMaxClients) {
      static constexpr char kFull[] = "{\"ok\":false,\"error\":\"too many control connections\"}\n";
      (void)send(fd, kFull, sizeof(kFull) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      dropped_++;
      continue;
    }
    auto c = std::make_unique<Client>();
    c->fd = fd;
    if (int r = sd_event_add_io(loop_, &c->src, fd, EPOLLIN, on_client, this); r < 0) {
      log::warn("control socket: watch client: {}", std::strerror(-r));
      close(fd);
      continue;
    }
    sd_event_source_set_priority(c->src, kPriority);
    clients_.emplace(fd, std::move(c));
  }
}

int Server::on_client(sd_event_source*, int fd, uint32_t events, void* self) {
  auto* s = static_cast<Server*>(self);
  auto it = s->clients_.find(fd);
  if (it == s->clients_.end()) return 0;
  Client& c = *it->second;
  // A request's handler may publish an event, which may cut off a slow
  // monitor: possibly this very client. Nothing is closed (freed) until the
  // callback is done with c.
  s->dispatching_ = true;
  if (events & EPOLLOUT) s->flush(c);
  if (c.fd >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) s->read_from(c);
  s->dispatching_ = false;
  if (c.fd < 0) s->close_client(fd);
  s->close_marked();
  return 0;
}

void Server::close_marked() {
  std::vector<int> gone;
  for (const auto& [fd, c] : clients_)
    if (c->fd < 0) gone.push_back(fd);
  for (int fd : gone) close_client(fd);
}

// Marks c closed (fd -1) on EOF or error; the caller removes it. A bounded
// number of reads: a client that never stops sending is served in turns with
// everything else on the loop (the socket stays readable, so it is called again).
void Server::read_from(Client& c) {
  char buf[16384];
  for (int reads = 0; reads < kReadsPerCallback; reads++) {
    ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    bool eof = n <= 0;
    // At EOF the client is done sending: what it asked for is still answered
    // (a last request may lack its newline), but a closed reader gets nothing more.
    if (eof)
      c.in += '\n';
    else
      c.in.append(buf, static_cast<size_t>(n));
    handle_lines(c);
    if (eof) {
      if (c.fd >= 0) flush(c);  // once, without waiting: a half-closed reader may still read
      c.fd = -1;
      return;
    }
    if (c.fd >= 0 && c.in.size() > kMaxLine) {
      refused_++;
      queue(c, {{"ok", false},
                {"error", "request longer than " + std::to_string(kMaxLine) + " bytes"}});
      flush(c);
      c.fd = -1;
    }
    if (c.fd < 0) return;
  }
}

// Every complete line in c.in, in order, until c is cut off.
void Server::handle_lines(Client& c) {
  size_t pos;
  while (c.fd >= 0 && (pos = c.in.find('\n')) != std::string::npos) {
    std::string line = c.in.substr(0, pos);
    c.in.erase(0, pos + 1);
    if (!line.empty()) handle_line(c, line);
  }
}

void Server::handle_line(Client& c, const std::string& line) {
  auto parsed = Request::parse(line, commands_);
  if (auto* err = std::get_if<std::string>(&parsed)) {
    refused_++;
    log::debug("control socket: request refused: {}", *err);
    queue(c, {{"ok", false}, {"error", *err}});
    return;
  }
  const Request& req = std::get<Request>(parsed);
  if (req.cmd() == "monitor") {
    c.monitor = true;
    queue(c, {{"ok", true}, {"result", nlohmann::json::object()}});
    return;
  }
  nlohmann::json reply;
  try {
    reply = handler_(req);
  } catch (const std::exception& e) {  // a bug, never a reason to end the agent
    failed_++;
    log::error("control socket: '{}' failed: {}", req.cmd(), e.what());
    reply = {{"ok", false}, {"error", "internal error in '" + req.cmd() + "': " + e.what()}};
  }
  queue(c, reply);
}

void Server::queue(Client& c, const nlohmann::json& msg) {
  if (c.fd < 0) return;
  c.out += msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  c.out += '\n';
  flush(c);
  if (c.fd >= 0 && c.out.size() > kMaxQueued) {
    log::warn("control socket: a client fell {} bytes behind; disconnected", c.out.size());
    dropped_++;
    c.fd = -1;
  }
}

void Server::flush(Client& c) {
  while (!c.out.empty()) {
    ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      c.fd = -1;  // gone
      return;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
  sd_event_source_set_io_events(c.src, c.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void Server::publish(const nlohmann::json& event) {
  nlohmann::json line = {{"event", event}};
  for (auto& [fd, c] : clients_)
    if (c->monitor) queue(*c, line);
  if (!dispatching_) close_marked();  // else on_client does, once it is done
}

// c.fd may already be -1 (marked): the map key is the real descriptor.
void Server::close_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  if (it->second->src) sd_event_source_disable_unref(it->second->src);
  close(fd);
  clients_.erase(it);
}

}  // namespace mlink::ctl
