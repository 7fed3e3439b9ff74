// hailstone's kernel lock: flock(2) for JavaScript, which Node does not expose.
//
// A state directory's lock files are held with an exclusive flock as well as by their
// content. The kernel releases a flock when its holder dies, whatever its pid or PID
// namespace, so "is the owner alive?" gets an exact answer: try the lock. Node opens and
// closes the file; this addon only locks a descriptor Node gave it.

#define NAPI_VERSION 8
#include <errno.h>
#include <stdio.h>
#include <node_api.h>
#include <sys/file.h>
#include <uv.h>

#define CHECK(env, call)                                                               \
  do {                                                                                 \
    if ((call) != napi_ok) {                                                           \
      napi_throw_error((env), "ERR_HAILSTONE_NATIVE", "Node-API call failed: " #call); \
      return NULL;                                                                     \
    }                                                                                  \
  } while (0)

// tryLockExclusive(fd): true when this open file now holds an exclusive flock, false when
// another open file holds one (EWOULDBLOCK). Any other failure throws with its errno name.
static napi_value try_lock_exclusive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tryLockExclusive(fd) needs a file descriptor");
    return NULL;
  }
  int r;
  do {
    r = flock(fd, LOCK_EX | LOCK_NB);
  } while (r != 0 && errno == EINTR);
  napi_value result;
  if (r == 0) {
    CHECK(env, napi_get_boolean(env, true, &result));
    return result;
  }
  if (errno == EWOULDBLOCK) {
    CHECK(env, napi_get_boolean(env, false, &result));
    return result;
  }
  int err = errno;
  char message[128];
  snprintf(message, sizeof message, "flock: %s", uv_strerror(uv_translate_sys_error(err)));
  napi_throw_error(env, uv_err_name(uv_translate_sys_error(err)), message);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"tryLockExclusive", NULL, try_lock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
