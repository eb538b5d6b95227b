// N-API glue for the file-system calls of fs_at.c, which Node's fs lacks but an OCI unpacker
// needs: *at calls that never follow a symlink, xattrs, device nodes. Arguments are parsed by
// one format per function; calls that allocate or free inodes can take a millisecond on a busy
// disk, so they run on libuv's thread pool (napi_async_work) and return a promise; metadata
// calls cost microseconds and run synchronously.
#include "errors.h"
#include "fs_at.h"
#include "unmount_socket.h"
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/** Argument formats: f descriptor, n entry name, t symlink target, u uint32, d double, x xattr name, b Buffer. */
typedef struct {
  const char* js;
  enum sg_op op;
  const char* format;
  int async;
} method;

static const method METHODS[] = {
  {"mkdirOpenAt", OP_MKDIR_OPEN, "fnu", 1},
  {"openBeneath", OP_OPEN_BENEATH, "ft", 1},
  {"createAt", OP_CREATE, "fnu", 1},
  {"symlinkAt", OP_SYMLINK, "tfn", 1},
  {"mknodAt", OP_MKNOD, "fnuuu", 1},
  {"linkAt", OP_LINK, "fnfn", 1},
  {"renameAt", OP_RENAME, "fnfn", 1},
  {"removeTreeAt", OP_REMOVE_TREE, "fn", 1},
  {"fsetxattr", OP_FSETXATTR, "fxb", 0},
  {"lsetxattrAt", OP_LSETXATTR, "fnxb", 0},
  {"lchownAt", OP_LCHOWN, "fnuu", 0},
  {"chmodAt", OP_CHMOD, "fnu", 0},
  {"lutimesAt", OP_LUTIMES, "fnd", 0},
};
#define NMETHODS (sizeof METHODS / sizeof METHODS[0])

typedef struct {
  sg_req req;
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer;  // keeps a Buffer argument alive while the call runs
} job;

/** Fills r from argv per format; returns 0, or -1 after throwing. */
static int parse(napi_env env, const method* m, napi_value* argv, size_t argc, job* j) {
  sg_req* r = &j->req;
  size_t i = 0;
  int nfd = 0, nname = 0, nnum = 0, bad = strlen(m->format) > argc;
  for (const char* c = m->format; !bad && *c; c++, i++) {
    switch (*c) {
      case 'f': bad = napi_get_value_int32(env, argv[i], &r->fd[nfd]) != napi_ok || r->fd[nfd] < 0; nfd++; break;
      case 'n':
        bad = sg_get_string(env, argv[i], r->name[nname], SG_NAME_BUF) != 0;
        if (!bad && !sg_is_component(r->name[nname])) {
          sg_throw_errno(env, EINVAL, m->js, r->name[nname]);  // never a path: one entry of the directory
          return -1;
        }
        nname++;
        break;
      case 't': bad = sg_get_string(env, argv[i], r->target, SG_TARGET_BUF) != 0; break;
      case 'u': bad = napi_get_value_uint32(env, argv[i], &r->num[nnum++]) != napi_ok; break;
      case 'd': bad = napi_get_value_double(env, argv[i], &r->seconds) != napi_ok || !isfinite(r->seconds); break;
      case 'x': bad = sg_get_string(env, argv[i], r->xname, SG_XATTR_NAME_BUF) != 0; break;
      case 'b':
        bad = napi_get_buffer_info(env, argv[i], &r->data, &r->len) != napi_ok;
        if (!bad && m->async) napi_create_reference(env, argv[i], 1, &j->buffer);
        break;
    }
  }
  if (bad) {
    napi_throw_type_error(env, NULL, m->js);
    return -1;
  }
  return 0;
}

static void execute(napi_env env, void* data) {
  (void)env;
  sg_run(&((job*)data)->req);
}

static void complete(napi_env env, napi_status status, void* data) {
  job* j = data;
  sg_req* r = &j->req;
  if (status != napi_ok && !r->err) r->err = ECANCELED;
  if (r->err) {
    napi_reject_deferred(env, j->deferred, sg_errno_error(env, r->err, r->syscall, r->name[0]));
  } else {
    napi_value v;
    napi_create_int32(env, r->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  if (j->buffer) napi_delete_reference(env, j->buffer);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value call(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  void* self;
  napi_get_cb_info(env, info, &argc, argv, NULL, &self);
  const method* m = self;
  job* j = calloc(1, sizeof *j);
  if (!j) return sg_throw_errno(env, ENOMEM, m->js, NULL);
  j->req.op = m->op;
  if (parse(env, m, argv, argc, j) != 0) {
    if (j->buffer) napi_delete_reference(env, j->buffer);
    free(j);
    return NULL;
  }
  if (!m->async) {
    sg_run(&j->req);
    sg_req r = j->req;
    free(j);
    return r.err ? sg_throw_errno(env, r.err, r.syscall, r.op == OP_FSETXATTR ? r.xname : r.name[0]) : NULL;
  }
  napi_value promise, resource;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "stargz-get:fs-at", NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

/* Big freed buffers go back to the kernel at once. glibc otherwise keeps them in its heaps
   (and raises its mmap threshold each time it sees one freed), so a whole-image sync held
   ~100 MB of chunks it had written long ago. The price is a page fault per page of each new
   big buffer, a sliver beside inflating it. Process-wide: called by the commands that stream. */
static napi_value return_freed_memory(napi_env env, napi_callback_info info) {
  (void)info;
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

/* fuse-native mounts through libfuse 2 inside one synchronous call: the guard (see
   unmount_socket.c) is taken before it and ended after it, held by JS as a Buffer. */
static napi_value unmount_socket_guard_js(napi_env env, napi_callback_info info) {
  (void)info;
  unmount_socket_guard g;
  unmount_socket_guard_begin(&g);
  napi_value out;
  void* data;
  napi_create_buffer_copy(env, sizeof g, &g, &data, &out);
  return out;
}

static napi_value place_unmount_socket_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], undefined;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_get_undefined(env, &undefined);
  void* data;
  size_t len = 0;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || len != sizeof(unmount_socket_guard)) {
    napi_throw_type_error(env, "EINVAL", "placeUnmountSocket: expected the Buffer unmountSocketGuard returned");
    return undefined;
  }
  unmount_socket_guard g;  // copied: a Buffer's bytes carry no alignment promise
  memcpy(&g, data, sizeof g);
  unmount_socket_guard_end(&g, -1);
  memcpy(data, &g, sizeof g);
  return undefined;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[NMETHODS + 3];
  for (size_t i = 0; i < NMETHODS; i++) {
    props[i] = (napi_property_descriptor){METHODS[i].js, NULL, call, NULL, NULL, NULL, napi_default, (void*)&METHODS[i]};
  }
  props[NMETHODS] = (napi_property_descriptor){"returnFreedMemory", NULL, return_freed_memory, NULL, NULL, NULL, napi_default, NULL};
  props[NMETHODS + 1] = (napi_property_descriptor){"unmountSocketGuard", NULL, unmount_socket_guard_js, NULL, NULL, NULL, napi_default, NULL};
  props[NMETHODS + 2] = (napi_property_descriptor){"placeUnmountSocket", NULL, place_unmount_socket_js, NULL, NULL, NULL, napi_default, NULL};
  napi_define_properties(env, exports, NMETHODS + 3, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
