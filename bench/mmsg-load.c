// Closed-loop UDP load generator for hailstone protocol v1, in C, so that the load
// generator is not what saturates first. Built and run by bench/udp.ts (cc -O2).
//
//   mmsg-load PORT COUNT SOCKETS WINDOW WARMUP_MS DURATION_MS [echo]
//
// With `echo`, the server is an echo baseline: replies are the requests sent back, so their
// opcode is REQUEST and their "ids" are padding; they are validated by nonce and length only.
//
// Each of SOCKETS sockets (connected to 127.0.0.1:PORT) keeps WINDOW requests for COUNT
// ids outstanding; every valid reply sends the next request on its slot (sendmmsg and
// recvmmsg in batches of up to 64). A reply is valid only with magic, version, opcode
// REPLY, the nonce of the slot's current request (slot and generation), and the length its
// count implies; anything else is counted as invalid. Requests outstanding for 200 ms are
// counted lost and sent again with a new generation. An UNAVAILABLE reply holds its slot
// back for the retry-after it carries (as a client must), so a refusing server is not
// flooded. After WARMUP_MS the window of
// DURATION_MS is measured: requests, replies by status, ids, latency percentiles — and every
// id received is kept and checked for duplicates at the end. Prints one JSON line.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load-common.h"

#define BATCH 64
#define MAX_WINDOW 1024
#define TIMEOUT_NS 200000000LL
#define MAX_IDS (48u * 1024u * 1024u)
#define MAX_SAMPLES (16u * 1024u * 1024u)

struct sock {
  int fd;
  uint32_t generation[MAX_WINDOW];
  int64_t sent_at[MAX_WINDOW];
  uint8_t outstanding[MAX_WINDOW];
  /** After UNAVAILABLE: when the slot may send again (0: not waiting). */
  int64_t resend_at[MAX_WINDOW];
};

static int count_ids, window_size, request_size;
static int measuring;
static int echo_mode;
static uint64_t requests, replies_ok, replies_unavailable, replies_bad, invalid, lost, id_total;
static uint64_t *ids;
static size_t ids_kept;
static float *samples;
static size_t samples_kept;

static void fill_request(uint8_t *buf, uint32_t slot, uint32_t generation) {
  memset(buf, 0, (size_t)request_size);
  buf[0] = 0x48; buf[1] = 0x53; buf[2] = 1; buf[3] = 1;
  put_u16(buf + 6, (uint16_t)count_ids);
  put_u32(buf + 8, slot);
  put_u32(buf + 12, generation);
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  uint64_t ms = (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
  put_u32(buf + 16, (uint32_t)(ms >> 32));
  put_u32(buf + 20, (uint32_t)ms);
}

/** Sends the given slots' next requests in sendmmsg batches. */
static void send_slots(struct sock *s, const uint32_t *slots, int n) {
  static uint8_t bufs[BATCH][24 + 8 * 149];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int done = 0; done < n;) {
    int k = n - done < BATCH ? n - done : BATCH;
    memset(msgs, 0, sizeof(msgs[0]) * (size_t)k);
    for (int i = 0; i < k; i++) {
      uint32_t slot = slots[done + i];
      s->generation[slot]++;
      s->sent_at[slot] = now_ns();
      s->outstanding[slot] = 1;
      fill_request(bufs[i], slot, s->generation[slot]);
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = (size_t)request_size;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(s->fd, msgs, (unsigned)k, 0);
    if (sent < 0) sent = 0; // ECONNREFUSED and the like: those slots time out and are resent
    if (measuring) requests += (uint64_t)k;
    done += k;
  }
}

static void on_reply(struct sock *s, const uint8_t *buf, int len, uint32_t *resend, int *nresend) {
  if (len < 24 || buf[0] != 0x48 || buf[1] != 0x53 || buf[2] != 1 || buf[3] != (echo_mode ? 1 : 2)) { if (measuring) invalid++; return; }
  uint32_t slot = get_u32(buf + 8);
  uint32_t generation = get_u32(buf + 12);
  if (slot >= (uint32_t)window_size || !s->outstanding[slot] || s->generation[slot] != generation) { if (measuring) invalid++; return; }
  uint8_t status = buf[5];
  uint16_t n = get_u16(buf + 6);
  if (status == 0 && (n < 1 || n > count_ids || len != 24 + 8 * n)) { if (measuring) invalid++; return; }
  if (echo_mode) n = 0; // padding, not ids
  s->outstanding[slot] = 0;
  if (status == 1) {
    int64_t retry_ms = (int64_t)get_u32(buf + 16);
    if (retry_ms < 1) retry_ms = 1;
    s->resend_at[slot] = now_ns() + retry_ms * 1000000LL;
  }
  if (measuring) {
    if (status == 0) {
      replies_ok++;
      id_total += n;
      for (int i = 0; i < n && ids_kept < MAX_IDS; i++) ids[ids_kept++] = get_u64(buf + 24 + 8 * i);
    } else if (status == 1) replies_unavailable++;
    else replies_bad++;
    if (samples_kept < MAX_SAMPLES) samples[samples_kept++] = (float)((now_ns() - s->sent_at[slot]) / 1000.0);
  }
  if (status != 1) resend[(*nresend)++] = slot;
}

int main(int argc, char **argv) {
  if (argc != 7 && !(argc == 8 && strcmp(argv[7], "echo") == 0)) {
    fprintf(stderr, "usage: %s PORT COUNT SOCKETS WINDOW WARMUP_MS DURATION_MS [echo]\n", argv[0]);
    return 2;
  }
  echo_mode = argc == 8;
  int port = atoi(argv[1]);
  count_ids = atoi(argv[2]);
  int nsock = atoi(argv[3]);
  window_size = atoi(argv[4]);
  int64_t warmup_ns = atoll(argv[5]) * 1000000LL;
  int64_t duration_ns = atoll(argv[6]) * 1000000LL;
  if (count_ids < 1 || count_ids > 149 || nsock < 1 || nsock > 64 || window_size < 1 || window_size > MAX_WINDOW) {
    fprintf(stderr, "out of range\n");
    return 2;
  }
  request_size = 24 + 8 * count_ids;
  ids = malloc(sizeof(uint64_t) * MAX_IDS);
  samples = malloc(sizeof(float) * MAX_SAMPLES);
  struct sock *socks = calloc((size_t)nsock, sizeof(struct sock));
  int ep = epoll_create1(0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  static uint32_t slots[MAX_WINDOW];
  for (int i = 0; i < window_size; i++) slots[i] = (uint32_t)i;
  for (int i = 0; i < nsock; i++) {
    socks[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int rcvbuf = 4 * 1024 * 1024;
    setsockopt(socks[i].fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(socks[i].fd, (struct sockaddr *)&to, sizeof(to)) != 0) { perror("connect"); return 1; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, socks[i].fd, &ev);
    send_slots(&socks[i], slots, window_size);
  }
  int64_t start = now_ns();
  int64_t measure_from = start + warmup_ns, measure_until = measure_from + duration_ns;
  int64_t last_timeout_scan = start;
  static uint8_t rbufs[BATCH][2048];
  struct mmsghdr rmsgs[BATCH];
  struct iovec riov[BATCH];
  uint32_t resend[MAX_WINDOW * 2];
  for (;;) {
    int64_t t = now_ns();
    if (!measuring && t >= measure_from) measuring = 1;
    if (t >= measure_until) break;
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 1);
    for (int e = 0; e < n; e++) {
      struct sock *s = &socks[evs[e].data.u32];
      for (;;) {
        memset(rmsgs, 0, sizeof(rmsgs));
        for (int i = 0; i < BATCH; i++) {
          riov[i].iov_base = rbufs[i];
          riov[i].iov_len = sizeof(rbufs[i]);
          rmsgs[i].msg_hdr.msg_iov = &riov[i];
          rmsgs[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(s->fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        int nresend = 0;
        for (int i = 0; i < got; i++) on_reply(s, rbufs[i], (int)rmsgs[i].msg_len, resend, &nresend);
        send_slots(s, resend, nresend);
        if (got < BATCH) break;
      }
    }
    // Slots whose retry-after has passed send again; requests without a reply for 200 ms
    // are lost and sent again.
    if (t - last_timeout_scan > 1000000LL) {
      last_timeout_scan = t;
      for (int i = 0; i < nsock; i++) {
        int nresend = 0;
        for (int slot = 0; slot < window_size; slot++) {
          struct sock *s = &socks[i];
          if (s->resend_at[slot] != 0 && t >= s->resend_at[slot]) {
            s->resend_at[slot] = 0;
            resend[nresend++] = (uint32_t)slot;
          } else if (s->outstanding[slot] && t - s->sent_at[slot] > TIMEOUT_NS) {
            if (measuring) lost++;
            resend[nresend++] = (uint32_t)slot;
          }
        }
        send_slots(&socks[i], resend, nresend);
      }
    }
  }
  double seconds = (double)duration_ns / 1e9;
  qsort(ids, ids_kept, sizeof(uint64_t), cmp_u64);
  uint64_t duplicates = 0;
  for (size_t i = 1; i < ids_kept; i++) duplicates += ids[i] == ids[i - 1];
  qsort(samples, samples_kept, sizeof(float), cmp_float);
#define PCT(p) (samples_kept == 0 ? 0.0 : (double)samples[(size_t)((p) / 100.0 * (double)(samples_kept - 1))])
  printf("{\"requests\":%llu,\"replies\":%llu,\"unavailable\":%llu,\"badRequest\":%llu,\"invalid\":%llu,\"lost\":%llu,"
         "\"ids\":%llu,\"idsChecked\":%zu,\"duplicates\":%llu,\"seconds\":%.3f,\"p50us\":%.1f,\"p99us\":%.1f,\"p999us\":%.1f}\n",
         (unsigned long long)requests, (unsigned long long)replies_ok, (unsigned long long)replies_unavailable,
         (unsigned long long)replies_bad, (unsigned long long)invalid, (unsigned long long)lost, (unsigned long long)id_total,
         ids_kept, (unsigned long long)duplicates, seconds, PCT(50), PCT(99), PCT(99.9));
  return 0;
}
