"""Shared pieces of the escape suite: host canaries, a probe binary, a
hostile-guest agent image.

``host_canaries`` snapshots what an escaped guest would change on the
host -- a canary tree in a host temp dir (it also holds a host "binary"
the /proc/<pid>/exe test aims at), sysctls such as core_pattern, host
files (/etc/hostname, ...) and the absence of files an escaped write
would create at the host's /, the host's cgroup hierarchies (top-level
groups, root-level release_agent and friends, the driver's parent
group's limits, our own group's limits), the host's mount table and
/proc/cgroups -- before and after a test, and asserts both are equal.

``probe_binary`` is a small static C program compiled once per session
(gcc -static): it calls syscalls busybox has no applet for (keyctl, bpf,
kexec_load, open_by_handle_at, ...) and prints ``name rc=.. errno=..``;
each probe is built so that reaching the kernel past the permission
check is harmless but visible (a wrong argument gives EINVAL instead of
EPERM). ``inject PID`` attaches to a process and makes it run a keyctl (its own
seccomp filter must refuse it); ``getfd PID`` copies its descriptors
with pidfd_getfd and names them. ``hold PATH MAX`` opens PATH (a file, or a ptmx for new ptys) until an
error and keeps it all open. ``enter PID`` makes it a host-side process
that joins a guest's
namespaces and forks a child there that never execs -- the window in
which anything pyct (or an operator's ``nsenter``) starts inside a guest
still runs a host binary. ``swap DIR A B`` exchanges two names with
renameat2(RENAME_EXCHANGE) in a tight loop. For network attacks:
``rawsend IF HEX N`` sends a hand-made Ethernet frame (VLAN tags, ARP)
through a raw packet socket, ``rawrecv IF PREFIX MS`` lists the frames
holding a marker that an interface sees, ``connect IP PORT MS`` tells a
TCP connect's outcome (ok, refused, or a silent drop: timeout);
``dnsq IP PORT udp|tcp HEX MS`` sends one DNS message and prints the
reply in hex (or timeout), ``dnsflood IP HEX N GAP_US MS`` sends N copies
over UDP, GAP_US apart, and counts the replies; ``tcphold IP PORT N MS``
holds N silent TCP connections and tells when the other side ends each.
``fitrim PATH`` and ``punch PATH`` try to hand disk blocks back (FITRIM on
PATH's file system, a hole punched over the file PATH).

``escape_image`` is the busybox image plus the probe and an agent script
that runs as the guest's PID 1 (image property ``os_command_line``): it
executes /run/pyct/cmd with sh and leaves the output in /run/pyct/out.
Commands it runs are real guest processes -- descendants of the guest's
init with everything the launcher applied (namespaces, cgroups, seccomp,
user namespace); ``guest_exec``'s are confined the same way but are not
the init's descendants.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from tests.privileged.guest_tools import guest_exec, init_pid
from tests.waiting import wait_for

PROBE_IMAGE = "pyct-escape-probe"
AGENT_ARGV = '["/bin/sh", "/sbin/pyct-agent"]'
MARKER = "PYCT-ESCAPE-TARGET-c0ffee"

SYSCTLS = ("kernel/core_pattern", "kernel/core_uses_pid", "kernel/modprobe",
           "kernel/hostname", "kernel/domainname", "kernel/sysrq",
           "kernel/panic", "kernel/randomize_va_space", "kernel/kptr_restrict",
           "kernel/dmesg_restrict", "kernel/unprivileged_bpf_disabled",
           "kernel/kexec_load_disabled", "kernel/perf_event_paranoid",
           "vm/overcommit_memory", "vm/swappiness", "fs/suid_dumpable",
           "net/ipv4/ip_forward", "net/core/bpf_jit_enable")
HOST_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
              "/etc/passwd", "/etc/shadow", "/root/.ssh/authorized_keys",
              "/sys/kernel/uevent_helper", "/usr/bin/nsenter", "/bin/sh",
              "/bin/busybox")
# What a host-side write that escaped through a guest's "/ symlink" would
# create at the host's root.
MUST_NOT_EXIST = ("/authorized_keys", "/hostname", "/hosts", "/resolv.conf",
                  "/.ssh", "/pyct-escaped", "/tmp/pyct-escaped")
_CG_ROOT_FILES = ("release_agent", "notify_on_release",
                  "cgroup.clone_children", "devices.list", "cgroup.sane_behavior")
_CG_LIMIT_FILES = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                   "memory.soft_limit_in_bytes", "pids.max", "cpu.shares",
                   "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpuset.cpus",
                   "cpuset.mems", "devices.list", "notify_on_release",
                   "freezer.state", "blkio.weight", "memory.max",
                   "cgroup.subtree_control")

PROBE_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char marker[] = "@MARKER@";

static void report(const char *name, long rc, int err) {
    printf("%s rc=%ld errno=%d %s\n", name, rc, rc < 0 ? err : 0,
           rc < 0 ? strerror(err) : "ok");
    fflush(stdout);
}

static int sys_probe(const char *name) {
    long rc = -1;
    errno = 0;
    if (!strcmp(name, "keyctl")) {
        /* KEYCTL_GET_KEYRING_ID of the session keyring, no create */
        rc = syscall(SYS_keyctl, 0, -3, 0);
    } else if (!strcmp(name, "add_key")) {
        /* an unknown key type: past the permission check it is ENODEV */
        rc = syscall(SYS_add_key, "pyct-no-such-type", "pyct", "x", 1, -3);
    } else if (!strcmp(name, "request_key")) {
        rc = syscall(SYS_request_key, "pyct-no-such-type", "pyct", NULL, 0);
    } else if (!strcmp(name, "bpf")) {
        uint32_t attr[32];
        memset(attr, 0, sizeof attr);
        attr[0] = 2; attr[1] = 4; attr[2] = 4; attr[3] = 1; /* 1-entry array */
        rc = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr);
    } else if (!strcmp(name, "kexec_load")) {
        /* bad arch flags: past the permission check it is EINVAL */
        rc = syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0x7fff0000UL);
    } else if (!strcmp(name, "kexec_file_load")) {
        rc = syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0x7fff0000UL);
    } else if (!strcmp(name, "init_module")) {
        rc = syscall(SYS_init_module, NULL, 0UL, "");
    } else if (!strcmp(name, "finit_module")) {
        rc = syscall(SYS_finit_module, -1, "", 0);
    } else if (!strcmp(name, "open_by_handle_at")) {
        /* the "shocker" attack: inode 2 (a root dir) of the file system
           behind a mount the guest can open */
        const char *mounts[] = {"/dev/null", "/dev/console", "/", "/etc/hosts"};
        struct { unsigned int bytes; int type; uint32_t ino, gen; } fh;
        int i, saved = 0;
        for (i = 0; i < 4; i++) {
            int mfd = open(mounts[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
            if (mfd < 0) continue;
            fh.bytes = 8; fh.type = 1; fh.ino = 2; fh.gen = 0;
            rc = syscall(SYS_open_by_handle_at, mfd, &fh, O_RDONLY);
            saved = errno;
            close(mfd);
            if (rc >= 0) { printf("opened-via %s\n", mounts[i]); break; }
        }
        errno = saved;
    } else if (!strcmp(name, "perf_event_open")) {
        uint32_t attr[32];
        memset(attr, 0, sizeof attr);
        attr[0] = 1 /* PERF_TYPE_SOFTWARE */; attr[1] = 112; /* size */
        /* cpu-wide (pid -1): needs CAP_PERFMON on the host */
        rc = syscall(SYS_perf_event_open, attr, -1, 0, -1, 0UL);
    } else if (!strcmp(name, "userfaultfd")) {
        rc = syscall(SYS_userfaultfd, O_CLOEXEC);
    } else if (!strcmp(name, "io_uring_setup")) {
        uint32_t params[30];
        memset(params, 0, sizeof params);
        rc = syscall(SYS_io_uring_setup, 1, params);
    } else if (!strcmp(name, "swapoff")) {
        rc = syscall(SYS_swapoff, "/pyct-no-such-swap");
    } else if (!strcmp(name, "syslog")) {
        rc = syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
    } else if (!strcmp(name, "settimeofday")) {
        /* past the permission check a NULL tv and tz is a no-op */
        rc = syscall(SYS_settimeofday, NULL, NULL);
        if (rc == 0) rc = 0;
    } else {
        fprintf(stderr, "unknown probe %s\n", name);
        return 2;
    }
    report(name, rc, errno);
    if (rc >= 0 && strcmp(name, "settimeofday")) close((int)rc);
    return 0;
}

static int do_ptrace(pid_t pid) {
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    int err = errno;
    report("ptrace", rc, err);
    if (rc == 0) {
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    }
    return 0;
}

/* Attach to PID and make it run keyctl(KEYCTL_GET_KEYRING_ID, session):
   the tracee's own seccomp filter decides (EPERM), not ours. x86_64. */
static int do_inject(pid_t pid) {
    struct user_regs_struct saved, regs;
    int st;
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    report("attach", rc, errno);
    if (rc < 0) return 0;
    waitpid(pid, &st, __WALL);
    ptrace(PTRACE_GETREGS, pid, NULL, &saved);
    errno = 0;
    long text = ptrace(PTRACE_PEEKTEXT, pid, (void *)(saved.rip - 2), NULL);
    if ((text & 0xffff) != 0x050f) {  /* not stopped after a syscall insn */
        printf("injected rc=-1 errno=0 no-syscall-insn\n");
    } else {
        regs = saved;
        regs.rip = saved.rip - 2;
        regs.orig_rax = (unsigned long long)-1;
        regs.rax = SYS_keyctl;
        regs.rdi = 0;                        /* KEYCTL_GET_KEYRING_ID */
        regs.rsi = (unsigned long long)-3;   /* session keyring */
        regs.rdx = 0;
        ptrace(PTRACE_SETREGS, pid, NULL, &regs);
        ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
        waitpid(pid, &st, __WALL);
        ptrace(PTRACE_GETREGS, pid, NULL, &regs);
        long ret = (long)regs.rax;
        report("injected", ret < 0 ? -1 : ret, ret < 0 ? (int)-ret : 0);
    }
    ptrace(PTRACE_SETREGS, pid, NULL, &saved);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return 0;
}

/* Take a copy of each of PID's descriptors 0..255 (pidfd_getfd) and say
   what it is. */
static int do_getfd(pid_t pid) {
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), fd;
    char path[64], target[256];
    if (pidfd < 0) { report("pidfd_open", -1, errno); return 0; }
    for (fd = 0; fd < 256; fd++) {
        int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
        if (got < 0) {
            if (errno != EBADF) printf("getfd %d errno=%d\n", fd, errno);
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", got);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        printf("stole %d %s\n", fd, target);
        close(got);
    }
    return 0;
}

static int do_enter(pid_t pid) {
    const char *names[] = {"user", "cgroup", "ipc", "uts", "net", "pid", "mnt"};
    char path[64];
    int i;
    for (i = 0; i < 7; i++) {
        struct stat mine, theirs;
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        if (stat(path, &mine) < 0) continue;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, names[i]);
        if (stat(path, &theirs) < 0) { perror(path); return 1; }
        if (mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, 0) < 0) { perror(path); return 1; }
        close(fd);
    }
    if (chdir("/") < 0) { perror("chdir"); return 1; }
    pid_t child = fork();
    if (child < 0) { perror("fork"); return 1; }
    if (child == 0) {
        /* a host binary running inside the guest, before any exec */
        printf("ready %d %s\n", (int)getpid(), marker);
        fflush(stdout);
        for (;;) pause();
    }
    waitpid(child, NULL, 0);
    return 0;
}

static int do_swap(const char *dir, const char *a, const char *b) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    unsigned long n = 0, errs = 0;
    if (fd < 0) { perror(dir); return 1; }
    for (;;) {
        if (syscall(SYS_renameat2, fd, a, fd, b, 2 /* EXCHANGE */) < 0)
            errs++;
        n++;
    }
    return 0;
}

/* Open PATH (a file, or a ptmx: each open is a new pty) until MAX or an
   error; report, then hold everything until killed. */
static int do_hold(const char *path, long max) {
    long n = 0;
    int err = 0;
    for (; n < max; n++) {
        if (open(path, O_RDWR | O_NOCTTY | O_CLOEXEC) < 0) { err = errno; break; }
        if (n % 5000 == 0) { printf("progress %ld\n", n); fflush(stdout); }
    }
    printf("held %ld errno=%d %s\n", n, err, strerror(err));
    fflush(stdout);
    for (;;) pause();
    return 0;
}

static int hexval(char c) {
    return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';
}

/* Send COUNT copies of the Ethernet frame HEX (its own header, any
   tags in it) on IFNAME through a raw packet socket. */
static int do_rawsend(const char *ifname, const char *hex, int count) {
    unsigned char frame[2048];
    size_t i, n = strlen(hex) / 2;
    long rc = -1;
    int err = 0;
    if (n < 14 || n > sizeof frame) { fprintf(stderr, "bad frame\n"); return 2; }
    for (i = 0; i < n; i++)
        frame[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) { report("rawsend", -1, errno); return 0; }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    memcpy(&sll.sll_protocol, frame + 12, 2);  /* already big-endian */
    sll.sll_halen = 6;
    memcpy(sll.sll_addr, frame, 6);
    while (count-- > 0) {
        rc = sendto(fd, frame, n, 0, (struct sockaddr *)&sll, sizeof sll);
        err = errno;
        if (rc < 0) break;
    }
    report("rawsend", rc, err);
    close(fd);
    return 0;
}

/* Hand a disk's blocks back: FITRIM on the file system behind PATH, or a
   hole punched over the whole file PATH. */
static int do_fitrim(const char *path) {
    uint64_t range[3] = {0, UINT64_MAX, 0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror(path); return 1; }
    long rc = ioctl(fd, 0xC0185879 /* FITRIM */, range);
    report("fitrim", rc, errno);
    close(fd);
    return 0;
}

/* For MS milliseconds print "got TOKEN vlan=0|1" for each frame on
   IFNAME (any direction, any type) that holds PREFIX; TOKEN is PREFIX
   and the letters, digits and dashes after it. */
static int do_rawrecv(const char *ifname, const char *prefix, int ms) {
    int fd = socket(AF_PACKET, SOCK_RAW, htons(0x0003 /* ETH_P_ALL */));
    int one = 1;
    struct sockaddr_ll sll;
    struct timespec start, now;
    if (fd < 0) { report("rawrecv", -1, errno); return 0; }
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    sll.sll_protocol = htons(0x0003);
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
        report("rawrecv", -1, errno);
        return 0;
    }
    printf("listening\n");
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ms - ((now.tv_sec - start.tv_sec) * 1000 +
                          (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0) break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)left) <= 0) continue;
        unsigned char buf[4096];
        char cbuf[256];
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov; msg.msg_iovlen = 1;
        msg.msg_control = cbuf; msg.msg_controllen = sizeof cbuf;
        ssize_t n = recvmsg(fd, &msg, 0);
        if (n <= 0) continue;
        int vlan = 0;
        struct cmsghdr *c;
        for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA)
                vlan = !!(((struct tpacket_auxdata *)CMSG_DATA(c))->tp_status
                          & TP_STATUS_VLAN_VALID);
        unsigned char *hit = memmem(buf, (size_t)n, prefix, strlen(prefix));
        if (!hit) continue;
        size_t len = 0;
        while (hit + len < buf + n && (hit[len] == '-' ||
               (hit[len] >= '0' && hit[len] <= '9') ||
               (hit[len] >= 'a' && hit[len] <= 'z') ||
               (hit[len] >= 'A' && hit[len] <= 'Z')))
            len++;
        printf("got %.*s vlan=%d\n", (int)len, hit, vlan);
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}

/* A TCP connect to HOST:PORT, given MS milliseconds: prints
   "connect ok", "connect timeout" or "connect errno=N". */
static int do_connect(const char *host, int port, int ms) {
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int err = 0;
    socklen_t len = sizeof err;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    if (fd < 0 || inet_pton(AF_INET, host, &sin.sin_addr) != 1) return 2;
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        if (errno != EINPROGRESS) { printf("connect errno=%d\n", errno); return 0; }
        struct pollfd pfd = {fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms) == 0) { printf("connect timeout\n"); return 0; }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err) printf("connect errno=%d\n", err); else printf("connect ok\n");
    close(fd);
    return 0;
}

static size_t unhex(const char *hex, unsigned char *out, size_t max) {
    size_t i, n = strlen(hex) / 2;
    if (n > max) return 0;
    for (i = 0; i < n; i++)
        out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    return n;
}

static int dns_socket(const char *ip, int port, int type, int ms) {
    struct sockaddr_in sin;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int fd = socket(AF_INET, type, 0);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    if (fd < 0 || inet_pton(AF_INET, ip, &sin.sin_addr) != 1) return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        printf(errno == EINPROGRESS ? "timeout\n" : "errno=%d\n", errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* One DNS message to IP:PORT over UDP or TCP: "reply HEX", "timeout",
   "closed" or "errno=N". */
static int do_dnsq(const char *ip, int port, const char *proto,
                   const char *hex, int ms) {
    static unsigned char q[2048], r[65600];
    size_t n = unhex(hex, q + 2, sizeof q - 2), i;
    int tcp = !strcmp(proto, "tcp");
    ssize_t got;
    int fd = dns_socket(ip, port, tcp ? SOCK_STREAM : SOCK_DGRAM, ms);
    if (fd < 0) return 0;
    q[0] = (unsigned char)(n >> 8); q[1] = (unsigned char)n;
    if (send(fd, tcp ? q : q + 2, tcp ? n + 2 : n, 0) < 0) {
        printf("errno=%d\n", errno); close(fd); return 0;
    }
    if (tcp) {
        got = recv(fd, r, 2, MSG_WAITALL);
        if (got == 2)
            got = recv(fd, r + 2, (size_t)(r[0] << 8 | r[1]), MSG_WAITALL);
        else if (got >= 0) got = 0;
    } else {
        got = recv(fd, r + 2, sizeof r - 2, 0);
    }
    if (got < 0)
        printf(errno == EAGAIN ? "timeout\n" : "errno=%d\n", errno);
    else if (got == 0)
        printf("closed\n");
    else {
        printf("reply ");
        for (i = 0; i < (size_t)got; i++) printf("%02x", r[2 + i]);
        printf("\n");
    }
    close(fd);
    return 0;
}

/* COUNT copies of a DNS query over UDP, GAP_US apart (0: as fast as
   they go), collecting replies in between, then the replies that come
   within MS more: "sent N replies M". */
static int do_dnsflood(const char *ip, const char *hex, int count,
                       long gap_us, int ms) {
    unsigned char q[2048], r[4096];
    size_t n = unhex(hex, q, sizeof q);
    int fd = dns_socket(ip, 53, SOCK_DGRAM, 50), sent = 0, replies = 0;
    struct timespec start, now, gap = {gap_us / 1000000,
                                       (gap_us % 1000000) * 1000};
    if (fd < 0) return 0;
    while (sent < count && send(fd, q, n, 0) >= 0) {
        sent++;
        while (recv(fd, r, sizeof r, MSG_DONTWAIT) > 0) replies++;
        if (gap_us) nanosleep(&gap, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 +
            (now.tv_nsec - start.tv_nsec) / 1000000 > ms) break;
        if (recv(fd, r, sizeof r, 0) > 0) replies++;
    }
    printf("sent %d replies %d\n", sent, replies);
    close(fd);
    return 0;
}

/* N TCP connections to IP:PORT held open without a word; for MS, when
   the other side ends each: "conn I eof MS" ("conn I open" if it did
   not). */
static int do_tcphold(const char *ip, int port, int count, int ms) {
    int fds[16], done[16], i, left = 0;
    struct timespec start, now;
    if (count > 16) count = 16;
    for (i = 0; i < count; i++) {
        fds[i] = dns_socket(ip, port, SOCK_STREAM, 2000);
        done[i] = fds[i] < 0;
        left += !done[i];
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (left > 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long t = (now.tv_sec - start.tv_sec) * 1000 +
                 (now.tv_nsec - start.tv_nsec) / 1000000;
        if (t > ms) break;
        struct pollfd p[16];
        for (i = 0; i < count; i++) {
            p[i].fd = done[i] ? -1 : fds[i];
            p[i].events = POLLIN;
        }
        if (poll(p, (nfds_t)count, 50) <= 0) continue;
        for (i = 0; i < count; i++) {
            char c;
            if (done[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (recv(fds[i], &c, 1, MSG_DONTWAIT) > 0) continue;
            printf("conn %d eof %ld\n", i, t);
            done[i] = 1;
            left--;
        }
    }
    for (i = 0; i < count; i++) {
        if (!done[i]) printf("conn %d open\n", i);
        if (fds[i] >= 0) close(fds[i]);
    }
    return 0;
}

static int do_punch(const char *path) {
    struct stat st;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) { perror(path); return 1; }
    /* FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE */
    long rc = fallocate(fd, 0x02 | 0x01, 0, st.st_size);
    report("punch", rc, errno);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "sys")) return sys_probe(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "ptrace")) return do_ptrace(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "enter")) return do_enter(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "inject")) return do_inject(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "getfd")) return do_getfd(atoi(argv[2]));
    if (argc == 5 && !strcmp(argv[1], "swap"))
        return do_swap(argv[2], argv[3], argv[4]);
    if (argc == 5 && !strcmp(argv[1], "rawsend"))
        return do_rawsend(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "rawrecv"))
        return do_rawrecv(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "connect"))
        return do_connect(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 7 && !strcmp(argv[1], "dnsq"))
        return do_dnsq(argv[2], atoi(argv[3]), argv[4], argv[5], atoi(argv[6]));
    if (argc == 6 && !strcmp(argv[1], "tcphold"))
        return do_tcphold(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc == 7 && !strcmp(argv[1], "dnsflood"))
        return do_dnsflood(argv[2], argv[3], atoi(argv[4]), atol(argv[5]),
                           atoi(argv[6]));
    if (argc == 3 && !strcmp(argv[1], "fitrim")) return do_fitrim(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "punch")) return do_punch(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "marker")) { puts(marker); return 0; }
    if (argc == 4 && !strcmp(argv[1], "hold"))
        return do_hold(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: pyct-probe sys NAME | ptrace PID | enter PID"
            " | swap DIR A B | rawsend IF HEX N | rawrecv IF PREFIX MS"
            " | connect IP PORT MS | dnsq IP PORT udp|tcp HEX MS"
            " | dnsflood IP HEX N GAP_US MS | tcphold IP PORT N MS"
            " | hold PATH MAX | fitrim PATH"
            " | punch PATH | inject PID | getfd PID | marker\n");
    return 2;
}
""".replace("@MARKER@", MARKER)

AGENT_SH = """\
#!/bin/sh
# pyct escape-suite agent: PID 1 of the hostile guest.
mkdir -p /run/pyct
echo pyct-agent-ready
while :; do
  if [ -f /run/pyct/cmd ]; then
    mv /run/pyct/cmd /run/pyct/running
    sh /run/pyct/running > /run/pyct/out.tmp 2>&1
    echo "exit=$?" >> /run/pyct/out.tmp
    mv /run/pyct/out.tmp /run/pyct/out
  fi
  usleep 20000
done
"""


# -- host canaries ---------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"unreadable: {err.errno}"


def _tree(top: str) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink,
                      st.st_ino, _read(p) if os.path.isfile(p)
                      and not os.path.islink(p) else None,
                      os.readlink(p) if os.path.islink(p) else None)
    return out


def _cgroup_state(parents: list[str]) -> dict:
    out: dict = {}
    # v2 (the v2 lane): one hierarchy at the root; "*/parent" is "parent"
    unified = os.path.exists("/sys/fs/cgroup/cgroup.subtree_control")
    if unified:
        parents = [p[2:] if p.startswith("*/") else p for p in parents]
    hiers = (["/sys/fs/cgroup/"] if unified
             else sorted(glob.glob("/sys/fs/cgroup/*/")))
    for hier in hiers:
        # other helpers' test groups come and go; ours are checked below
        out[hier + "<groups>"] = sorted(
            d for d in os.listdir(hier)
            if os.path.isdir(os.path.join(hier, d)) and "pyct" not in d)
        for name in _CG_ROOT_FILES:
            out[hier + name] = _text(os.path.join(hier, name))
    with open("/proc/self/cgroup") as f:
        own = [line.strip().split(":", 2) for line in f if line.strip()]
    for _hid, ctrls, path in own:
        name = ctrls.replace("name=", "") or ("" if unified else "unified")
        parents = parents + [os.path.join(name, path.lstrip("/"))]
    for parent in parents:
        for d in glob.glob(os.path.join("/sys/fs/cgroup", parent)):
            for name in _CG_LIMIT_FILES:
                out[os.path.join(d, name)] = _text(os.path.join(d, name))
    with open("/proc/cgroups") as f:
        out["/proc/cgroups"] = [tuple(line.split()[:2]) for line in f]
    return out


def _text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _mounts() -> list:
    with open("/proc/self/mountinfo") as f:
        return sorted(tuple(line.split()[4:5] + line.split(" - ")[1].split()[:1])
                      for line in f if "pyct" not in line)


def snapshot_host(canary_dir: str, parents: list[str]) -> dict:
    state = {"canary": _tree(canary_dir),
             "sysctl": {s: _text(os.path.join("/proc/sys", s))
                        for s in SYSCTLS},
             "files": {p: _read(p) for p in HOST_FILES},
             "absent": {p: os.path.lexists(p) for p in MUST_NOT_EXIST},
             "cgroups": _cgroup_state(parents),
             "mounts": _mounts(),
             "uname": os.uname().nodename}
    return state


def diff(before: dict, after: dict) -> list[str]:
    out = []
    for key in before:
        if isinstance(before[key], dict):
            for sub in sorted(set(before[key]) | set(after[key])):
                if before[key].get(sub) != after[key].get(sub):
                    out.append(f"{key}:{sub}: {before[key].get(sub)!r} -> "
                               f"{after[key].get(sub)!r}")
        elif before[key] != after[key]:
            out.append(f"{key}: {before[key]!r} -> {after[key]!r}")
    return out


class Canaries:
    """The canary dir and the host snapshot taken before the test."""

    def __init__(self, parents: list[str]) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyct-escape-canary-")
        os.makedirs(os.path.join(self.dir, "etc"))
        os.makedirs(os.path.join(self.dir, ".ssh"), 0o700)
        for rel, text in (("etc/hostname", "host-canary\n"),
                          ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
                          (".ssh/authorized_keys", "host key\n"),
                          ("secret", "host secret pyct-canary\n")):
            with open(os.path.join(self.dir, rel), "w") as f:
                f.write(text)
        self.parents = parents
        self.before: dict = {}

    def take(self) -> None:
        self.before = snapshot_host(self.dir, self.parents)

    def changes(self) -> list[str]:
        after = snapshot_host(self.dir, self.parents)
        # The driver makes its parent group on its first spawn: limits
        # appearing there (None -> value) are the driver's, not a guest's.
        return [c for c in diff(self.before, after)
                if not (c.startswith("cgroups:") and ": None -> " in c
                        and any(p.split("/")[-1] in c for p in self.parents))]

    def check(self) -> None:
        changes = self.changes()
        assert not changes, "host changed:\n" + "\n".join(changes)


@pytest.fixture
def host_canaries(driver):
    """Snapshot host canaries before the test; assert them unchanged after
    (after the test's own guests are gone)."""
    can = Canaries([os.path.join("*", driver.cgroups.parent)])
    try:
        can.take()
        yield can
        can.check()
    finally:
        shutil.rmtree(can.dir, ignore_errors=True)


# -- the probe binary and the agent image ---------------------------------

@pytest.fixture(scope="session")
def probe_binary():
    tmp = tempfile.mkdtemp(prefix="pyct-escape-probe-")
    src = os.path.join(tmp, "probe.c")
    out = os.path.join(tmp, "pyct-probe")
    with open(src, "w") as f:
        f.write(PROBE_C)
    res = subprocess.run(["gcc", "-static", "-O1", "-o", out, src],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    try:
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_probe_image(tar_path: str, probe: str) -> None:
    from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
    build_busybox_rootfs(tar_path)
    with tarfile.open(tar_path, "a", format=tarfile.PAX_FORMAT) as tar:
        for name, path, data in (("usr/bin/pyct-probe", probe, None),
                                 ("sbin/pyct-agent", None, AGENT_SH.encode())):
            if path:
                with open(path, "rb") as f:
                    data = f.read()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 1_700_000_000
            tar.addfile(ti, io.BytesIO(data))


@pytest.fixture(scope="module")
def escape_image(driver, probe_binary):
    tar = os.path.join(driver.test_tmp, "escape-probe.tar")
    build_probe_image(tar, probe_binary)
    driver.import_image(PROBE_IMAGE, tar)
    return PROBE_IMAGE


def boot_agent(guests, fl=None, vifs=()):
    """A guest whose PID 1 is the agent; returns its spec once ready."""
    spec = guests.boot(fl, vifs=vifs, image_id=PROBE_IMAGE,
                       os_command_line=AGENT_ARGV)
    pid = init_pid(guests.driver, spec.uuid)
    wait_for(lambda: os.path.isdir(f"/proc/{pid}/root/run/pyct"),
             what="agent ready")
    return spec


def agent_run(driver, uuid: str, script: str, timeout: float = 30.0) -> str:
    """Run ``script`` with sh as a child of the guest's init; its output."""
    run = f"/proc/{init_pid(driver, uuid)}/root/run/pyct"
    out = os.path.join(run, "out")
    if os.path.exists(out):
        os.unlink(out)
    guest_write(driver, uuid, "/run/pyct/cmd", script)
    wait_for(lambda: os.path.exists(out), timeout=timeout,
             what=f"agent output of {script[:60]!r}")
    with open(out) as f:
        return f.read()


def guest_write(driver, uuid: str, path: str, data: str) -> None:
    """Atomically write ``path`` in the guest, as guest root: the host's
    root cannot create files in an unprivileged guest's tmpfs (host uid 0
    has no mapping there: EOVERFLOW)."""
    guest_exec(driver, uuid, ["/bin/sh", "-c",
                              'cat > "$0.tmp" && mv "$0.tmp" "$0"', path],
               input=data)


def guest_file(driver, uuid: str, path: str) -> str:
    """Host path of ``path`` in the running guest's mount namespace."""
    return f"/proc/{init_pid(driver, uuid)}/root{path}"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False
