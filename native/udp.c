// hailstone's batched UDP transport: a Node-API addon that owns one UDP socket.
//
// Node's dgram pays one recvmsg, one sendmsg, an event-loop turn and a JS callback per
// datagram. Here, when libuv reports the socket readable (uv_poll, inside Node's own
// loop), one recvmmsg receives up to a batch of datagrams straight into a region of memory
// that JavaScript preallocated (the arena: one fixed-size slot per datagram), one JS call
// answers the whole batch in place — each reply is written over its request, which the
// protocol guarantees is at least as large — and one sendmmsg sends every reply back to
// the address its request came from. No JS object is made per datagram.
//
// JS sees, per slot i, eight int32s in a metadata array:
//   [0] length received (-1: the datagram was larger than a slot and was truncated)
//   [1] reply length, written by JS (0: no reply)
//   [2] address family (4 or 6)   [3] source port
//   [4..7] source address, 16 bytes (IPv4 in the first 4)
//
// Linux only (recvmmsg/sendmmsg); elsewhere the addon is not built and hailstone uses dgram.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_BATCH 64
#define META_INTS 8
// Batches handled per readiness event before yielding to the rest of the event loop
// (timers renew the durable reservation; they must not starve under a flood).
#define MAX_ROUNDS 16

enum { ST_RECEIVED, ST_BATCHES, ST_SENT, ST_SEND_FAILED, ST_RECEIVE_ERRORS, ST_TRUNCATED, ST_COUNT };

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int closing;
  napi_ref on_batch;
  napi_ref on_close;
  napi_ref arena_ref;
  napi_ref meta_ref;
  napi_async_context async_context;
  uint8_t *arena;
  int32_t *meta;
  uint32_t batch;
  uint32_t slot_size;
  double stats[ST_COUNT];
  struct mmsghdr in[MAX_BATCH];
  struct iovec in_iov[MAX_BATCH];
  struct sockaddr_storage from[MAX_BATCH];
  struct mmsghdr out[MAX_BATCH];
  struct iovec out_iov[MAX_BATCH];
} udp_t;

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), "ERR_HAILSTONE_NATIVE", "Node-API call failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, uv_strerror(-err));
  napi_throw_error(env, uv_err_name(-err), message);
  return NULL;
}

// An exception thrown by the JS callback becomes an uncaught exception, as it would from
// any other I/O callback; it is not swallowed here.
static void fatal_if_pending(napi_env env, napi_status status) {
  bool pending = false;
  if (status == napi_ok || napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
  napi_value error;
  if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
}

static void record_source(udp_t *u, uint32_t i) {
  int32_t *m = u->meta + i * META_INTS;
  memset(m + 4, 0, 16);
  if (u->from[i].ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&u->from[i];
    m[2] = 6;
    m[3] = ntohs(a->sin6_port);
    memcpy(m + 4, &a->sin6_addr, 16);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&u->from[i];
    m[2] = 4;
    m[3] = ntohs(a->sin_port);
    memcpy(m + 4, &a->sin_addr, 4);
  }
}

// Sends every reply JS wrote. A reply the kernel refuses (EAGAIN/ENOBUFS when the send
// buffer is full, EPERM from a firewall, …) is counted and skipped, never retried forever:
// the client's own retry covers it, with the same request id.
static void send_replies(udp_t *u, uint32_t received) {
  uint32_t m = 0;
  for (uint32_t i = 0; i < received; i++) {
    int32_t length = u->meta[i * META_INTS + 1];
    if (length <= 0 || (uint32_t)length > u->slot_size) continue;
    u->out_iov[m].iov_base = u->arena + (size_t)i * u->slot_size;
    u->out_iov[m].iov_len = (size_t)length;
    memset(&u->out[m].msg_hdr, 0, sizeof u->out[m].msg_hdr);
    u->out[m].msg_hdr.msg_name = &u->from[i];
    u->out[m].msg_hdr.msg_namelen = u->in[i].msg_hdr.msg_namelen;
    u->out[m].msg_hdr.msg_iov = &u->out_iov[m];
    u->out[m].msg_hdr.msg_iovlen = 1;
    m++;
  }
  uint32_t done = 0;
  while (done < m) {
    int r = sendmmsg(u->fd, u->out + done, m - done, MSG_DONTWAIT);
    if (r > 0) {
      u->stats[ST_SENT] += r;
      done += (uint32_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      // The first remaining reply failed: count it and go on with the rest.
      u->stats[ST_SEND_FAILED]++;
      done++;
    }
  }
}

static void call_on_batch(udp_t *u, uint32_t received) {
  napi_env env = u->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, argv[1], result;
  // make_callback needs an object as `this`: the global one, as for any plain function.
  if (napi_get_reference_value(env, u->on_batch, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_uint32(env, received, &argv[0]) == napi_ok) {
    // make_callback, not call_function: it runs the microtask and nextTick queues after,
    // exactly as Node does after any I/O callback.
    fatal_if_pending(env, napi_make_callback(env, u->async_context, recv, fn, 1, argv, &result));
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  udp_t *u = (udp_t *)handle->data;
  if (status < 0) {
    u->stats[ST_RECEIVE_ERRORS]++;
    return;
  }
  for (int round = 0; round < MAX_ROUNDS && !u->closing; round++) {
    for (uint32_t i = 0; i < u->batch; i++) {
      u->in[i].msg_hdr.msg_namelen = sizeof u->from[i];
      u->in[i].msg_hdr.msg_flags = 0;
      u->in[i].msg_len = 0;
    }
    int n = recvmmsg(u->fd, u->in, u->batch, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) u->stats[ST_RECEIVE_ERRORS]++;
      return;
    }
    if (n == 0) return;
    for (int i = 0; i < n; i++) {
      int32_t *m = u->meta + i * META_INTS;
      if (u->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
        m[0] = -1;
        u->stats[ST_TRUNCATED]++;
      } else {
        m[0] = (int32_t)u->in[i].msg_len;
      }
      m[1] = 0;
      record_source(u, (uint32_t)i);
    }
    u->stats[ST_RECEIVED] += n;
    u->stats[ST_BATCHES]++;
    call_on_batch(u, (uint32_t)n);
    // JS may have closed the transport while answering; the replies of this batch are
    // still sent (the socket closes only in the close callback).
    send_replies(u, (uint32_t)n);
    if ((uint32_t)n < u->batch) return;  // a short batch: the queue is drained
  }
}

static void on_closed(uv_handle_t *handle) {
  udp_t *u = (udp_t *)handle->data;
  napi_env env = u->env;
  close(u->fd);
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value fn, recv, result;
    if (u->on_close != NULL && napi_get_reference_value(env, u->on_close, &fn) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
      fatal_if_pending(env, napi_make_callback(env, u->async_context, recv, fn, 0, NULL, &result));
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, u->on_batch);
  if (u->on_close != NULL) napi_delete_reference(env, u->on_close);
  napi_delete_reference(env, u->arena_ref);
  napi_delete_reference(env, u->meta_ref);
  napi_async_destroy(env, u->async_context);
  free(u);
}

static int parse_address(const char *host, uint32_t port, struct sockaddr_storage *addr, socklen_t *len) {
  memset(addr, 0, sizeof *addr);
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return AF_INET;
  }
  if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return AF_INET6;
  }
  return -1;
}

static napi_value get_buffer(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_arraybuffer = false;
  CHECK(env, napi_is_arraybuffer(env, value, &is_arraybuffer));
  if (!is_arraybuffer) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "arena and meta must be ArrayBuffers");
    return NULL;
  }
  CHECK(env, napi_get_arraybuffer_info(env, value, data, length));
  return value;
}

// open(host, port, options{reusePort, receiveBufferBytes}, arena, meta, slotSize, batch, onBatch)
//   -> [handle, boundPort]
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "open() takes 8 arguments");
    return NULL;
  }
  char host[64];
  size_t host_len;
  uint32_t port, slot_size, batch, reuse_port_flag, receive_buffer;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_len));
  CHECK(env, napi_get_value_uint32(env, argv[1], &port));
  napi_value option;
  CHECK(env, napi_get_named_property(env, argv[2], "reusePort", &option));
  CHECK(env, napi_get_value_uint32(env, option, &reuse_port_flag));
  CHECK(env, napi_get_named_property(env, argv[2], "receiveBufferBytes", &option));
  CHECK(env, napi_get_value_uint32(env, option, &receive_buffer));
  void *arena, *meta;
  size_t arena_len, meta_len;
  if (get_buffer(env, argv[3], &arena, &arena_len) == NULL) return NULL;
  if (get_buffer(env, argv[4], &meta, &meta_len) == NULL) return NULL;
  CHECK(env, napi_get_value_uint32(env, argv[5], &slot_size));
  CHECK(env, napi_get_value_uint32(env, argv[6], &batch));
  if (batch < 1 || batch > MAX_BATCH || slot_size < 64 || arena_len < (size_t)batch * slot_size ||
      meta_len < (size_t)batch * META_INTS * sizeof(int32_t)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "arena or meta too small for the batch, or batch not in 1..64");
    return NULL;
  }

  struct sockaddr_storage addr;
  socklen_t addr_len;
  int family = parse_address(host, port, &addr, &addr_len);
  if (family < 0 || port > 65535) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "host must be an IPv4 or IPv6 address and port 0..65535");
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (reuse_port_flag && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "setsockopt(SO_REUSEPORT)", err);
  }
  // Dual-stack like Node's udp6 sockets: bound to "::", IPv4 clients arrive as ::ffff:a.b.c.d.
  int zero = 0;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (receive_buffer > 0) {
    int size = (int)receive_buffer;
    // Capped by net.core.rmem_max; the default still works, so a refusal is not an error.
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (bind(fd, (struct sockaddr *)&addr, addr_len) < 0) {
    int err = errno;
    close(fd);
    char what[128];
    snprintf(what, sizeof what, "bind %s:%u", host, port);
    return throw_errno(env, what, err);
  }
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bound_len);
  uint32_t bound_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port : ((struct sockaddr_in6 *)&bound)->sin6_port);

  udp_t *u = calloc(1, sizeof *u);
  if (u == NULL) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  u->env = env;
  u->fd = fd;
  u->arena = arena;
  u->meta = meta;
  u->batch = batch;
  u->slot_size = slot_size;
  for (uint32_t i = 0; i < batch; i++) {
    u->in_iov[i].iov_base = u->arena + (size_t)i * slot_size;
    u->in_iov[i].iov_len = slot_size;
    u->in[i].msg_hdr.msg_iov = &u->in_iov[i];
    u->in[i].msg_hdr.msg_iovlen = 1;
    u->in[i].msg_hdr.msg_name = &u->from[i];
  }
  napi_value resource, resource_name;
  if (napi_create_reference(env, argv[7], 1, &u->on_batch) != napi_ok || napi_create_reference(env, argv[3], 1, &u->arena_ref) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &u->meta_ref) != napi_ok || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "HailstoneNativeUdp", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, resource, resource_name, &u->async_context) != napi_ok) {
    close(fd);
    free(u);
    napi_throw_error(env, "ERR_HAILSTONE_NATIVE", "could not set up the socket's callbacks");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  int r = uv_poll_init(loop, &u->poll, fd);
  if (r == 0) {
    u->poll.data = u;
    r = uv_poll_start(&u->poll, UV_READABLE, on_readable);
  }
  if (r != 0) {
    close(fd);
    free(u);
    return throw_errno(env, "uv_poll", -r);
  }

  napi_value result, handle, port_value;
  CHECK(env, napi_create_external(env, u, NULL, NULL, &handle));
  CHECK(env, napi_create_uint32(env, bound_port, &port_value));
  CHECK(env, napi_create_array_with_length(env, 2, &result));
  CHECK(env, napi_set_element(env, result, 0, handle));
  CHECK(env, napi_set_element(env, result, 1, port_value));
  return result;
}

static udp_t *handle_of(napi_env env, napi_value value) {
  void *u = NULL;
  if (napi_get_value_external(env, value, &u) != napi_ok || u == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a socket handle");
    return NULL;
  }
  return (udp_t *)u;
}

// close(handle, onClosed): stops receiving now; onClosed runs once the socket is closed.
static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = handle_of(env, argv[0]);
  if (u == NULL || u->closing) return NULL;
  u->closing = 1;
  if (argc > 1) CHECK(env, napi_create_reference(env, argv[1], 1, &u->on_close));
  uv_poll_stop(&u->poll);
  uv_close((uv_handle_t *)&u->poll, on_closed);
  return NULL;
}

// stats(handle, out: Float64Array) — counters since open, in the ST_* order.
static napi_value udp_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_t *u = handle_of(env, argv[0]);
  if (u == NULL) return NULL;
  napi_typedarray_type type;
  size_t length;
  void *data;
  CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL));
  if (type != napi_float64_array || length < ST_COUNT) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "stats() needs a Float64Array of 6");
    return NULL;
  }
  memcpy(data, u->stats, sizeof u->stats);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, udp_stats, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties));
  napi_value batch;
  CHECK(env, napi_create_uint32(env, MAX_BATCH, &batch));
  CHECK(env, napi_set_named_property(env, exports, "maxBatch", batch));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
