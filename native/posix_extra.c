// The few POSIX calls Node's fs lacks but an OCI unpacker needs, all relative to a directory
// descriptor or through the entry's own descriptor, none following a symlink: extended
// attributes, owner, mode and times of entries that cannot be opened (symlinks, device nodes,
// fifos). Synchronous: none allocates an inode, each costs microseconds. The calls that do
// allocate (create, mkdir, link, rename...) are asynchronous, in fs_at.c.
#define _GNU_SOURCE
#include "errors.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define NAME_BUF 1024
#define XATTR_NAME_BUF 256

void sg_register_fs_at(napi_env env, napi_value exports);

static int get_fd(napi_env env, napi_value v, int* fd) {
  return napi_get_value_int32(env, v, fd) == napi_ok && *fd >= 0 ? 0 : -1;
}

/** (dirfd, name) of the first two arguments; name must be one directory entry. */
static int get_at(napi_env env, napi_value* argv, int* dirfd, char* name) {
  return get_fd(env, argv[0], dirfd) == 0 && sg_get_string(env, argv[1], name, NAME_BUF) == 0 && sg_is_component(name) ? 0 : -1;
}

static napi_value type_error(napi_env env, const char* usage) {
  napi_throw_type_error(env, NULL, usage);
  return NULL;
}

// fsetxattr(fd: number, name: string, value: Buffer): void
static napi_value js_fsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd;
  char name[XATTR_NAME_BUF];
  void* data = NULL;
  size_t len = 0;
  if (argc < 3 || get_fd(env, argv[0], &fd) || sg_get_string(env, argv[1], name, sizeof name) ||
      napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok)
    return type_error(env, "fsetxattr(fd, name, buffer)");
  if (fsetxattr(fd, name, len ? data : "", len, 0) != 0) return sg_throw_errno(env, errno, "fsetxattr", name);
  return NULL;
}

// lsetxattrAt(dirfd: number, entry: string, name: string, value: Buffer): void
// An entry that cannot be opened: through /proc/self/fd/DIRFD/ENTRY, where the kernel jumps to
// the directory itself, and lsetxattr does not follow ENTRY if it is a symlink.
static napi_value js_lsetxattr_at(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int dirfd;
  char entry[NAME_BUF], name[XATTR_NAME_BUF], path[NAME_BUF + 64];
  void* data = NULL;
  size_t len = 0;
  if (argc < 4 || get_at(env, argv, &dirfd, entry) || sg_get_string(env, argv[2], name, sizeof name) ||
      napi_get_buffer_info(env, argv[3], &data, &len) != napi_ok)
    return type_error(env, "lsetxattrAt(dirfd, entry, name, buffer)");
  snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd, entry);
  if (lsetxattr(path, name, len ? data : "", len, 0) != 0) return sg_throw_errno(env, errno, "lsetxattr", entry);
  return NULL;
}

// lchownAt(dirfd: number, name: string, uid: number, gid: number): void
static napi_value js_lchown_at(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int dirfd;
  char name[NAME_BUF];
  uint32_t uid, gid;
  if (argc < 4 || get_at(env, argv, &dirfd, name) || napi_get_value_uint32(env, argv[2], &uid) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &gid) != napi_ok)
    return type_error(env, "lchownAt(dirfd, name, uid, gid)");
  if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return sg_throw_errno(env, errno, "fchownat", name);
  return NULL;
}

// chmodAt(dirfd: number, name: string, mode: number): void  (refuses a symlink rather than following it)
static napi_value js_chmod_at(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int dirfd;
  char name[NAME_BUF];
  uint32_t mode;
  if (argc < 3 || get_at(env, argv, &dirfd, name) || napi_get_value_uint32(env, argv[2], &mode) != napi_ok)
    return type_error(env, "chmodAt(dirfd, name, mode)");
  if (fchmodat(dirfd, name, (mode_t)mode, AT_SYMLINK_NOFOLLOW) != 0) return sg_throw_errno(env, errno, "fchmodat", name);
  return NULL;
}

// lutimesAt(dirfd: number, name: string, seconds: number): void  (atime = mtime = seconds)
static napi_value js_lutimes_at(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int dirfd;
  char name[NAME_BUF];
  double t;
  if (argc < 3 || get_at(env, argv, &dirfd, name) || napi_get_value_double(env, argv[2], &t) != napi_ok || !isfinite(t))
    return type_error(env, "lutimesAt(dirfd, name, seconds)");
  double sec = floor(t);
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)sec;
  ts[0].tv_nsec = (long)llround((t - sec) * 1e9);
  if (ts[0].tv_nsec >= 1000000000L) ts[0].tv_sec++, ts[0].tv_nsec -= 1000000000L;
  ts[1] = ts[0];
  if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) != 0) return sg_throw_errno(env, errno, "utimensat", name);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"fsetxattr", NULL, js_fsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lsetxattrAt", NULL, js_lsetxattr_at, NULL, NULL, NULL, napi_default, NULL},
    {"lchownAt", NULL, js_lchown_at, NULL, NULL, NULL, napi_default, NULL},
    {"chmodAt", NULL, js_chmod_at, NULL, NULL, NULL, napi_default, NULL},
    {"lutimesAt", NULL, js_lutimes_at, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  sg_register_fs_at(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
