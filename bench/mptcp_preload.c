// LD_PRELOAD shim for the MPTCP goodput case (bench/run.sh): TCP sockets become MPTCP ones,
// as mptcpize does (Debian bookworm's mptcpd does not ship it, and its iperf3 3.12 has no
// --mptcp). Only socket(AF_INET/AF_INET6, SOCK_STREAM, 0 or IPPROTO_TCP) is changed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  if ((domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM &&
      (protocol == 0 || protocol == IPPROTO_TCP))
    protocol = IPPROTO_MPTCP;
  return real(domain, type, protocol);
}
