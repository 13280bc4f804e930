// The control socket on a real Unix socket and a real sd-event loop: replies
// in order, bad requests answered and survived, monitor events, a stalled
// monitor client disconnected without blocking anyone, the socket file's mode
// and its takeover rules.
#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "ctl/commands.h"
#include "ctl/server.h"
#include "sys/netns.h"

namespace {

using mlink::ctl::Request;
using mlink::ctl::Server;
using mlink::ctl::Type;
using nlohmann::json;

using Loop = mlink::testing::EventLoop;

std::string temp_path() {
  char dir[] = "/tmp/mlctl.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  return std::string(dir) + "/node.sock";
}

int connect_to(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  return fd;
}

void send_all(int fd, const std::string& s) {
  REQUIRE(send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// Reads one line, spinning the loop while waiting (the server runs on it).
std::string read_line(int fd, Loop& loop, std::string& buf) {
  for (int i = 0; i < 500; i++) {
    if (auto pos = buf.find('\n'); pos != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      return line;
    }
    loop.spin(1);
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) {
      char b[65536];
      ssize_t n = recv(fd, b, sizeof(b), 0);
      if (n <= 0) return "<closed>";
      buf.append(b, static_cast<size_t>(n));
    }
  }
  return "<timeout>";
}

const std::vector<mlink::ctl::Command> kTestCommands{
    {"ping", {}}, {"monitor", {}}, {"flood", {}}, {"throw", {}}};

Server::Handler echo_handler() {
  return [](const Request& req) -> json {
    if (req.cmd() == "throw") throw std::runtime_error("boom");
    return {{"ok", true}, {"result", "pong"}};
  };
}

}  // namespace

TEST_CASE("control socket: replies in order; bad requests get an error and change nothing") {
  Loop loop;
  auto path = temp_path();
  auto srv = Server::listen(path, kTestCommands, echo_handler());
  REQUIRE(srv.ok());
  REQUIRE((*srv)->attach(loop.e).ok());

  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  int fd = connect_to(path);
  std::string buf;
  send_all(fd,
           "{\"cmd\":\"ping\"}\nnot json\n{\"cmd\":7}\n{\"cmd\":\"nope\"}\n{\"cmd\":\"ping\"}\n");
  CHECK(json::parse(read_line(fd, loop, buf))["result"] == "pong");
  for (int i = 0; i < 3; i++) {
    auto r = json::parse(read_line(fd, loop, buf));
    CHECK(r["ok"] == false);
    CHECK(r["error"].get<std::string>().size() > 0);
  }
  CHECK(json::parse(read_line(fd, loop, buf))["result"] == "pong");

  // A line longer than the limit: an error, then the connection is closed.
  send_all(fd, std::string(Server::kMaxLine + 10, 'x'));
  auto r = json::parse(read_line(fd, loop, buf));
  CHECK(r["ok"] == false);
  CHECK(read_line(fd, loop, buf) == "<closed>");
  close(fd);
  loop.spin();
  CHECK((*srv)->clients() == 0);
}

TEST_CASE("control socket: monitor events; a stalled monitor is dropped, others keep going") {
  Loop loop;
  auto path = temp_path();
  auto srv = Server::listen(path, kTestCommands, echo_handler());
  REQUIRE(srv.ok());
  REQUIRE((*srv)->attach(loop.e).ok());

  int mon = connect_to(path), stalled = connect_to(path), other = connect_to(path);
  std::string bm, bs, bo;
  send_all(mon, "{\"cmd\":\"monitor\"}\n");
  send_all(stalled, "{\"cmd\":\"monitor\"}\n");
  CHECK(json::parse(read_line(mon, loop, bm))["ok"] == true);
  CHECK(json::parse(read_line(stalled, loop, bs))["ok"] == true);

  (*srv)->publish({{"type", "link"}, {"link", "eth1"}, {"to", "down"}});
  auto ev = json::parse(read_line(mon, loop, bm));
  CHECK(ev["event"]["link"] == "eth1");

  // `stalled` never reads again: publish until its queue passes the limit,
  // while `mon` keeps reading. Nothing blocks; the stalled one is cut off.
  std::string big(64 * 1024, 'e');
  auto t0 = std::chrono::steady_clock::now();
  int seen = 0;
  for (int i = 0; i < 200 && (*srv)->clients_dropped() == 0; i++) {
    (*srv)->publish({{"type", "bulk"}, {"n", i}, {"pad", big}});
    if (json::parse(read_line(mon, loop, bm))["event"]["n"] == i) seen++;
  }
  CHECK((*srv)->clients_dropped() == 1);
  CHECK(seen > 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  send_all(other, "{\"cmd\":\"ping\"}\n");
  CHECK(json::parse(read_line(other, loop, bo))["result"] == "pong");
  CHECK((*srv)->clients() == 2);
  close(mon);
  close(stalled);
  close(other);
}

TEST_CASE("control socket: a live socket is not taken over, a stale one is") {
  Loop loop;
  auto path = temp_path();
  {
    auto first = Server::listen(path, kTestCommands, echo_handler());
    REQUIRE(first.ok());
    auto second = Server::listen(path, kTestCommands, echo_handler());
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().message.find("in use") != std::string::npos);
  }
  CHECK(access(path.c_str(), F_OK) != 0);  // removed with its server
  // A socket file left by an agent that died (nobody listens on it).
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0);
  close(fd);
  auto third = Server::listen(path, kTestCommands, echo_handler());
  CHECK(third.ok());
}

TEST_CASE("control socket: a request whose events cut off the asking client itself") {
  Loop loop;
  auto path = temp_path();
  Server* self = nullptr;
  auto srv = Server::listen(path, kTestCommands, [&](const Request& req) -> json {
    if (req.cmd() == "flood")  // more than a client may fall behind, in one request
      for (int i = 0; i < 100; i++) self->publish({{"n", i}, {"pad", std::string(64 * 1024, 'f')}});
    return {{"ok", true}, {"result", nullptr}};
  });
  REQUIRE(srv.ok());
  self = srv->get();
  REQUIRE((*srv)->attach(loop.e).ok());
  int fd = connect_to(path);
  std::string buf;
  send_all(fd, "{\"cmd\":\"monitor\"}\n");
  CHECK(json::parse(read_line(fd, loop, buf))["ok"] == true);
  send_all(fd, "{\"cmd\":\"flood\"}\n");  // and never read again
  loop.spin(20);
  CHECK((*srv)->clients_dropped() == 1);
  CHECK((*srv)->clients() == 0);
  close(fd);
}

// The agent's own command table: every way a field can be wrong is an error
// reply naming it, and the connection goes on. (mlinkd once ended on
// {"cmd":"link del","link":1}: a json type_error out of the handler.)
TEST_CASE("control socket: wrong types, unknown keys, a throwing handler: replies, no exit") {
  Loop loop;
  auto path = temp_path();
  std::vector<json> seen;
  auto srv = Server::listen(path, mlink::ctl::agent_commands(), [&](const Request& req) -> json {
    if (req.cmd() == "reload") throw std::out_of_range("map::at");  // a bug in a handler
    seen.push_back({{"cmd", req.cmd()}, {"link", req.text("link")}});
    return {{"ok", true}, {"result", nullptr}};
  });
  REQUIRE(srv.ok());
  REQUIRE((*srv)->attach(loop.e).ok());
  int fd = connect_to(path);
  std::string buf;
  const std::pair<const char*, const char*> refused[] = {
      {R"({"cmd":"link del","link":1})", "\"link\" must be a string"},
      {R"({"cmd":"link del"})", "\"link\" is missing"},
      {R"({"cmd":"link set","link":"eth0","weight":-3})", "\"weight\" must be an unsigned"},
      {R"({"cmd":"link set","link":"eth0","weight":1.5})", "\"weight\" must be an unsigned"},
      {R"({"cmd":"link set","link":"eth0","drain":"yes"})", "\"drain\" must be true or false"},
      {R"({"cmd":"link set","link":"eth0","wieght":3})", "unknown key \"wieght\""},
      {R"({"cmd":"flow get","dst":["10.88.0.2"]})", "\"dst\" must be a string"},
      {R"({"cmd":"flow get","dst":"10.88.0.2","sport":{}})", "\"sport\" must be an unsigned"},
      {R"({"cmd":"show","x":null})", "unknown key \"x\""},
      {R"({"cmd":"shutdown"})", "unknown command 'shutdown'"},
      {R"(["cmd","show"])", "not a JSON object"},
      {R"({"cmd":null})", "string \"cmd\""},
      {"{\"cmd\":\"show\"\xff}", "not a JSON object"},
  };
  for (const auto& [line, why] : refused) {
    send_all(fd, std::string(line) + "\n");
    auto r = json::parse(read_line(fd, loop, buf));
    CHECK_MESSAGE(r["ok"] == false, line);
    CHECK_MESSAGE(r["error"].get<std::string>().find(why) != std::string::npos,
                  line << " -> " << r["error"]);
  }
  CHECK(seen.empty());  // nothing reached the handler
  CHECK((*srv)->requests_refused() == std::size(refused));

  send_all(fd, "{\"cmd\":\"reload\"}\n");
  auto r = json::parse(read_line(fd, loop, buf));
  CHECK(r["ok"] == false);
  CHECK(r["error"].get<std::string>().find("internal error") != std::string::npos);
  CHECK((*srv)->requests_failed() == 1);

  send_all(fd, "{\"cmd\":\"link del\",\"link\":\"eth1\"}\n");
  CHECK(json::parse(read_line(fd, loop, buf))["ok"] == true);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0]["link"] == "eth1");
  close(fd);
}
