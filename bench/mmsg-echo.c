// A bare C echo server with recvmmsg/sendmmsg and epoll, single process: the floor a
// batched UDP server stands on on this machine, with no Node, no JavaScript and no id
// logic. bench/udp.ts compiles it with cc when it can and runs it beside the others.
//   mmsg-echo            prints "echo listening on PORT"; SIGTERM stops it

#define _GNU_SOURCE
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 2048

static volatile sig_atomic_t stop = 0;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(void) {
  static unsigned char data[BATCH][SLOT];
  static struct sockaddr_storage from[BATCH];
  static struct iovec iov[BATCH];
  static struct mmsghdr msgs[BATCH];
  signal(SIGTERM, on_term);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int size = 4 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return perror("bind"), 1;
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &len);
  printf("echo listening on %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  while (!stop) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, 100) <= 0) continue;
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = data[i];
      iov[i].iov_len = SLOT;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) continue;
    for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
    for (int done = 0; done < n;) {
      int r = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);
      done += r > 0 ? r : 1;
    }
  }
  return 0;
}
