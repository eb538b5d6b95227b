// The few POSIX calls Node's fs lacks but an OCI unpacker needs: extended attributes on
// the entry itself (never following a symlink), and device nodes / fifos. Synchronous and
// tiny; they are called once per entry that needs them.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>

#define PATH_BUF 4096
#define NAME_BUF 256

static napi_value throw_errno(napi_env env, int err, const char* syscall, const char* path) {
  char msg[PATH_BUF + 64];
  snprintf(msg, sizeof msg, "%s: %s '%s'", syscall, strerror(err), path);
  napi_value error, code, message;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  const char* name = "EIO";
  switch (err) {
    case EPERM: name = "EPERM"; break;
    case EACCES: name = "EACCES"; break;
    case ENOENT: name = "ENOENT"; break;
    case EEXIST: name = "EEXIST"; break;
    case ENOTSUP: name = "ENOTSUP"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case E2BIG: name = "E2BIG"; break;
    case ERANGE: name = "ERANGE"; break;
    case EINVAL: name = "EINVAL"; break;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char* buf, size_t len) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok) return -1;
  if (n >= len - 1) return -1;  /* refuse silently truncated names */
  return 0;
}

// lsetxattr(path: string, name: string, value: Buffer): void
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[NAME_BUF];
  void* data = NULL; size_t len = 0;
  if (argc < 3 || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name) ||
      napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lsetxattr(path, name, buffer)");
    return NULL;
  }
  if (lsetxattr(path, name, len ? data : "", len, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

// mknod(path: string, mode: number /* includes S_IFCHR/S_IFBLK/S_IFIFO */, major: number, minor: number): void
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF]; uint32_t mode = 0, major = 0, minor = 0;
  if (argc < 4 || get_string(env, argv[0], path, sizeof path) || napi_get_value_uint32(env, argv[1], &mode) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &major) != napi_ok || napi_get_value_uint32(env, argv[3], &minor) != napi_ok) {
    napi_throw_type_error(env, NULL, "mknod(path, mode, major, minor)");
    return NULL;
  }
  if (mknod(path, (mode_t)mode, makedev(major, minor)) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
