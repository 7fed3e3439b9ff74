// Open-loop UDP load generator for hailstone protocol v1, in C: requests are sent on a
// fixed schedule whatever the replies do, and each reply's latency is measured from the
// moment its request was *scheduled*, not sent — so a server (or a generator) that falls
// behind shows up as latency instead of being hidden by sending less (coordinated
// omission). Built and run by bench/latency.ts and bench/steady.ts (cc -O2).
//
//   open-load PORT RATE WARMUP_MS DURATION_MS [echo]
//
// Request k (one id each) is due at start + k / RATE; it carries k as its nonce. Requests
// are spread over SOCKETS connected sockets. There are no retries: a request without a
// reply 500 ms after the end is lost. With `echo`, the server sends requests back
// unchanged (their opcode stays REQUEST). Only the DURATION_MS window after WARMUP_MS is
// measured. Every id received is kept and checked for duplicates. Prints one JSON line:
// rates, replies by status, lost, duplicates, latency percentiles in µs, and how late the
// generator itself sent (so its own lag is never mistaken for the server's).

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load-common.h"

#define SOCKETS 4
#define BATCH 64
#define REQUEST_SIZE 32

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 6 && strcmp(argv[5], "echo") == 0)) {
    fprintf(stderr, "usage: %s PORT RATE WARMUP_MS DURATION_MS [echo]\n", argv[0]);
    return 2;
  }
  int echo = argc == 6;
  int port = atoi(argv[1]);
  double rate = atof(argv[2]);
  int64_t warmup_ns = atoll(argv[3]) * 1000000LL, duration_ns = atoll(argv[4]) * 1000000LL;
  if (rate < 1 || rate > 2e6 || duration_ns <= 0 || warmup_ns < 0) {
    fprintf(stderr, "out of range\n");
    return 2;
  }
  // Precise sleeps: the default 50 µs timer slack would bunch the schedule.
  prctl(PR_SET_TIMERSLACK, 1000UL);
  uint64_t total = (uint64_t)(rate * (double)(warmup_ns + duration_ns) / 1e9) + 1;
  uint64_t first_measured = (uint64_t)(rate * (double)warmup_ns / 1e9);
  float *latency_us = malloc(sizeof(float) * total);
  uint8_t *answered = calloc(total, 1);
  uint64_t *ids = malloc(sizeof(uint64_t) * total);
  float *send_lag_us = malloc(sizeof(float) * total);
  if (latency_us == NULL || answered == NULL || ids == NULL || send_lag_us == NULL) { perror("malloc"); return 1; }
  size_t nlat = 0, nids = 0, nlag = 0;
  uint64_t ok = 0, unavailable = 0, bad = 0, invalid = 0;

  int ep = epoll_create1(0);
  int fds[SOCKETS];
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  for (int i = 0; i < SOCKETS; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int buf = 4 * 1024 * 1024;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    if (connect(fds[i], (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }

  static uint8_t sbufs[BATCH][REQUEST_SIZE];
  static uint8_t rbufs[BATCH][2048];
  struct mmsghdr smsgs[BATCH], rmsgs[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  double ns_per_request = 1e9 / rate;
  int64_t start = now_ns();
  int64_t end = start + warmup_ns + duration_ns;
  uint64_t next = 0;
  int turn = 0;
  for (;;) {
    int64_t t = now_ns();
    // Send everything due by now, in batches, rotating over the sockets.
    while (next < total && start + (int64_t)((double)next * ns_per_request) <= t) {
      int k = 0;
      while (k < BATCH && next < total && start + (int64_t)((double)next * ns_per_request) <= t) {
        uint8_t *b = sbufs[k];
        memset(b, 0, REQUEST_SIZE);
        b[0] = 0x48; b[1] = 0x53; b[2] = 1; b[3] = 1;
        put_u16(b + 6, 1);
        put_u32(b + 8, (uint32_t)(next >> 32));
        put_u32(b + 12, (uint32_t)next);
        if (next >= first_measured) send_lag_us[nlag++] = (float)((t - (start + (int64_t)((double)next * ns_per_request))) / 1000.0);
        siov[k].iov_base = b;
        siov[k].iov_len = REQUEST_SIZE;
        memset(&smsgs[k], 0, sizeof smsgs[k]);
        smsgs[k].msg_hdr.msg_iov = &siov[k];
        smsgs[k].msg_hdr.msg_iovlen = 1;
        k++;
        next++;
      }
      // A full send buffer drops the rest of the batch: those requests count as lost.
      if (sendmmsg(fds[turn], smsgs, (unsigned)k, 0) < 0) {}
      turn = (turn + 1) % SOCKETS;
    }
    // Receive whatever arrived; block only until the next request is due.
    int64_t due = next < total ? start + (int64_t)((double)next * ns_per_request) : end + 500000000LL;
    if (next >= total && t >= end + 500000000LL) break;
    int64_t wait_ns = due - now_ns();
    struct epoll_event evs[SOCKETS];
    int n = epoll_wait(ep, evs, SOCKETS, 0);
    if (n == 0 && wait_ns > 20000) {
      struct timespec sl = {0, wait_ns > 200000 ? 200000 : wait_ns - 10000};
      nanosleep(&sl, NULL);
      continue;
    }
    for (int e = 0; e < n; e++) {
      int fd = fds[evs[e].data.u32];
      for (;;) {
        for (int i = 0; i < BATCH; i++) {
          riov[i].iov_base = rbufs[i];
          riov[i].iov_len = sizeof rbufs[i];
          memset(&rmsgs[i], 0, sizeof rmsgs[i]);
          rmsgs[i].msg_hdr.msg_iov = &riov[i];
          rmsgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        int64_t at = now_ns();
        for (int i = 0; i < got; i++) {
          const uint8_t *b = rbufs[i];
          int len = (int)rmsgs[i].msg_len;
          if (len < 24 || b[0] != 0x48 || b[1] != 0x53 || b[2] != 1 || b[3] != (echo ? 1 : 2)) { invalid++; continue; }
          uint64_t k = (uint64_t)get_u32(b + 8) << 32 | get_u32(b + 12);
          if (k >= next || answered[k]) { invalid++; continue; }
          uint8_t status = b[5];
          uint16_t count = get_u16(b + 6);
          if (!echo && status == 0 && (count != 1 || len != 32)) { invalid++; continue; }
          answered[k] = 1;
          if (k < first_measured) continue;
          if (status == 0) {
            ok++;
            if (!echo) ids[nids++] = get_u64(b + 24);
          } else if (status == 1) unavailable++;
          else bad++;
          latency_us[nlat++] = (float)((at - (start + (int64_t)((double)k * ns_per_request))) / 1000.0);
        }
        if (got < BATCH) break;
      }
    }
  }
  uint64_t measured = total - first_measured;
  uint64_t lost = measured - (ok + unavailable + bad);
  qsort(ids, nids, sizeof(uint64_t), cmp_u64);
  uint64_t duplicates = 0;
  for (size_t i = 1; i < nids; i++) duplicates += ids[i] == ids[i - 1];
  qsort(latency_us, nlat, sizeof(float), cmp_float);
  qsort(send_lag_us, nlag, sizeof(float), cmp_float);
#define PCT(a, n, p) ((n) == 0 ? 0.0 : (double)(a)[(size_t)((p) / 100.0 * (double)((n) - 1))])
  printf("{\"rate\":%.0f,\"seconds\":%.3f,\"requests\":%llu,\"replies\":%llu,\"unavailable\":%llu,\"badRequest\":%llu,\"invalid\":%llu,"
         "\"lost\":%llu,\"idsChecked\":%zu,\"duplicates\":%llu,\"p50us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f,\"maxUs\":%.1f,"
         "\"sendLagP99us\":%.1f,\"sendLagMaxUs\":%.1f}\n",
         rate, (double)duration_ns / 1e9, (unsigned long long)measured, (unsigned long long)ok, (unsigned long long)unavailable,
         (unsigned long long)bad, (unsigned long long)invalid, (unsigned long long)lost, nids, (unsigned long long)duplicates,
         PCT(latency_us, nlat, 50), PCT(latency_us, nlat, 99), PCT(latency_us, nlat, 99.9), nlat == 0 ? 0.0 : (double)latency_us[nlat - 1],
         PCT(send_lag_us, nlag, 99), nlag == 0 ? 0.0 : (double)send_lag_us[nlag - 1]);
  return 0;
}
