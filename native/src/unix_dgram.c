/*
 * AF_UNIX SOCK_DGRAM receiver for Node (N-API + libuv).
 *
 * Why: Node core has no unix datagram sockets, and the npm add-ons receive into 64 KiB, which
 * cuts Snort's 65,864-byte Alertpkt before its gid/sid trailer. Here each datagram is read
 * whole into a 256 KiB buffer (larger than any datagram the default wmem lets a sender queue),
 * with MSG_TRUNC so a still-larger datagram is reported with its real size, not silently cut.
 *
 * Reads are non-blocking and driven by a uv_poll on the event loop: every readable event
 * drains the queue (up to MAX_BATCH datagrams) and hands the batch to JS in one call, so a
 * sender that blocks on a full queue (Snort) is released as soon as the loop runs.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RECV_BUF_SIZE (256 * 1024)
#define MAX_BATCH 1024

typedef struct Receiver Receiver;

/* What the JS external points to; outlives the Receiver when close() ran first. */
typedef struct {
  Receiver *r;
} Handle;

struct Receiver {
  int fd;
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  uint8_t *buf;
  Handle *handle;
  int closing;
};

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "unix_dgram: N-API call failed: " #call); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value e, m, c;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  /* errno name as `code`, like Node's own system errors */
  const char *name = uv_err_name(-err);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &c);
  napi_set_named_property(env, e, "code", c);
  napi_throw(env, e);
  return NULL;
}

static int fill_addr(const char *path, struct sockaddr_un *sa, socklen_t *len) {
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof sa->sun_path) return ENAMETOOLONG;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

static int get_string(napi_env env, napi_value v, char *out, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok) return -1;
  if (len >= size - 1) return -1;
  return 0;
}

static void deliver_error(Receiver *r, int err) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[1], result;
  char msg[200];
  snprintf(msg, sizeof msg, "recv: %s", strerror(err));
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &argv[0]);
  napi_get_reference_value(env, r->cb, &cb);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, r->actx, recv, cb, 1, argv, &result) == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  Receiver *r = (Receiver *)p->data;
  if (r->closing) return;
  if (status < 0) {
    deliver_error(r, -status);
    return;
  }
  (void)events;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value arr, sizes;
  napi_create_array(env, &arr);
  napi_create_array(env, &sizes);
  uint32_t count = 0;
  int err = 0;
  while (count < MAX_BATCH) {
    /* MSG_TRUNC: the return value is the datagram's real length even when it did not fit. */
    ssize_t n = recv(r->fd, r->buf, RECV_BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    size_t got = (size_t)n < RECV_BUF_SIZE ? (size_t)n : RECV_BUF_SIZE;
    napi_value b, sz;
    void *data;
    napi_create_buffer_copy(env, got, r->buf, &data, &b);
    napi_create_double(env, (double)n, &sz);
    napi_set_element(env, arr, count, b);
    napi_set_element(env, sizes, count, sz);
    count++;
  }
  if (count > 0) {
    napi_value cb, recv, argv[3], result;
    napi_get_null(env, &argv[0]);
    argv[1] = arr;
    argv[2] = sizes;
    napi_get_reference_value(env, r->cb, &cb);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, r->actx, recv, cb, 3, argv, &result) == napi_pending_exception) {
      napi_value ex;
      napi_get_and_clear_last_exception(env, &ex);
      napi_fatal_exception(env, ex);
    }
  }
  napi_close_handle_scope(env, scope);
  if (err) deliver_error(r, err);
}

static void on_closed(uv_handle_t *h) {
  Receiver *r = (Receiver *)h->data;
  close(r->fd);
  free(r->buf);
  free(r);
}

static void receiver_close(Receiver *r) {
  if (r->closing) return;
  r->closing = 1;
  if (r->handle) r->handle->r = NULL;
  r->handle = NULL;
  uv_poll_stop(&r->poll);
  napi_delete_reference(r->env, r->cb);
  napi_async_destroy(r->env, r->actx);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Handle *h = (Handle *)data;
  if (h->r) receiver_close(h->r);
  free(h);
}

/* bind(path: string, rcvbuf: number, cb: (err: string|null, bufs?: Buffer[], sizes?: number[]) => void)
 *   -> { handle, rcvbuf }   (rcvbuf: the kernel's value after the request, bytes) */
static napi_value Bind(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (argc < 3 || get_string(env, argv[0], path, sizeof path) != 0) {
    napi_throw_type_error(env, NULL, "bind(path, rcvbuf, cb): path must be a string shorter than 108 bytes");
    return NULL;
  }
  int64_t want = 0;
  CHECK(napi_get_value_int64(env, argv[1], &want));
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[2], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, NULL, "bind: cb must be a function");
    return NULL;
  }
  struct sockaddr_un sa;
  socklen_t salen;
  int e = fill_addr(path, &sa, &salen);
  if (e) return throw_errno(env, "bind: socket path", e);

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (want > 0) {
    int v = want > 0x3fffffff ? 0x3fffffff : (int)want;
    /* SO_RCVBUFFORCE passes net.core.rmem_max when we have CAP_NET_ADMIN; else the capped one. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  }
  if (bind(fd, (struct sockaddr *)&sa, salen) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  int got = 0;
  socklen_t gl = sizeof got;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);

  Receiver *r = calloc(1, sizeof *r);
  Handle *h = calloc(1, sizeof *h);
  uint8_t *buf = malloc(RECV_BUF_SIZE);
  if (!r || !h || !buf) {
    free(r);
    free(h);
    free(buf);
    close(fd);
    return throw_errno(env, "bind", ENOMEM);
  }
  r->fd = fd;
  r->env = env;
  r->buf = buf;
  r->handle = h;
  h->r = r;
  napi_value name;
  CHECK(napi_create_string_utf8(env, "UnixDgramReceiver", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &r->actx));
  CHECK(napi_create_reference(env, argv[2], 1, &r->cb));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int ue = uv_poll_init(loop, &r->poll, fd);
  if (ue == 0) {
    r->poll.data = r;
    ue = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  }
  if (ue != 0) {
    napi_delete_reference(env, r->cb);
    napi_async_destroy(env, r->actx);
    close(fd);
    free(buf);
    free(r);
    free(h);
    return throw_errno(env, "uv_poll", -ue);
  }
  napi_value obj, ext, rb;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_external(env, h, handle_finalize, NULL, &ext));
  CHECK(napi_create_int64(env, got, &rb));
  CHECK(napi_set_named_property(env, obj, "handle", ext));
  CHECK(napi_set_named_property(env, obj, "rcvbuf", rb));
  return obj;
}

/* close(handle): stops polling and closes the socket (the path is unlinked by the JS side). */
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "close(handle): not a receiver handle");
    return NULL;
  }
  Handle *h = (Handle *)data;
  if (h->r) receiver_close(h->r);
  return NULL;
}

/* sendTo(path, buffer) -> bytes sent. Non-blocking: throws with code EAGAIN when the queue is full. */
static napi_value SendTo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  void *data;
  size_t len;
  bool isbuf = false;
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) != 0 ||
      napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf) {
    napi_throw_type_error(env, NULL, "sendTo(path, buffer)");
    return NULL;
  }
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  struct sockaddr_un sa;
  socklen_t salen;
  int e = fill_addr(path, &sa, &salen);
  if (e) return throw_errno(env, "sendTo: socket path", e);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  ssize_t n = sendto(fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  if (n < 0) return throw_errno(env, "sendto", err);
  napi_value out;
  CHECK(napi_create_double(env, (double)n, &out));
  return out;
}

/* probe(path) -> "live" (someone is bound and receiving) | "stale" (ECONNREFUSED) | error code */
static napi_value Probe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  if (argc < 1 || get_string(env, argv[0], path, sizeof path) != 0) {
    napi_throw_type_error(env, NULL, "probe(path)");
    return NULL;
  }
  struct sockaddr_un sa;
  socklen_t salen;
  int e = fill_addr(path, &sa, &salen);
  if (e) return throw_errno(env, "probe: socket path", e);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int rc = connect(fd, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  const char *res = rc == 0 ? "live" : err == ECONNREFUSED ? "stale" : uv_err_name(-err);
  napi_value out;
  CHECK(napi_create_string_utf8(env, res, NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"bind", NULL, Bind, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo", NULL, SendTo, NULL, NULL, NULL, napi_default, NULL},
      {"probe", NULL, Probe, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value max;
  napi_create_int32(env, RECV_BUF_SIZE, &max);
  napi_set_named_property(env, exports, "recvBufferSize", max);
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
