#!/usr/bin/env python3
"""seccomp_exec.py ERRNO SYSCALL... -- CMD ARG...: exec CMD under a seccomp allow-list.

What systemd does for SystemCallFilter= (an allow-list) with SystemCallErrorNumber=ERRNO,
for a test bed where systemd is not PID 1: every listed system call is allowed, any other
fails with ERRNO ("kill": the process is killed, systemd's default). The caller expands
the unit's @groups (systemd-analyze syscall-filter). Uses libseccomp through ctypes, so
nothing is compiled; the filter implies no_new_privs, as NoNewPrivileges=yes does.
"""
import ctypes
import errno
import os
import sys

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000


def scmp_act_errno(e):
    return 0x00050000 | (e & 0xFFFF)


def main():
    argv = sys.argv[1:]
    if "--" not in argv or len(argv) < 3:
        sys.exit(__doc__)
    sep = argv.index("--")
    action, names, cmd = argv[0], argv[1:sep], argv[sep + 1:]
    default = SCMP_ACT_KILL_PROCESS if action == "kill" else scmp_act_errno(getattr(errno, action))
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    ctx = lib.seccomp_init(default)
    if not ctx:
        sys.exit("seccomp_init failed")
    allowed = 0
    for name in names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue  # not a system call on this architecture (systemd skips those too)
        if lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0:
            continue  # a pseudo-syscall libseccomp cannot place here
        allowed += 1
    if allowed == 0:
        sys.exit("no system call allowed: empty filter")
    if (r := lib.seccomp_load(ctx)) < 0:
        sys.exit(f"seccomp_load: {os.strerror(-r)}")
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
