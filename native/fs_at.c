// File-system calls relative to a directory descriptor, on one entry name of that directory
// (never a path: a name with '/' is refused), never following a symlink: what `sync` needs to
// keep every write inside DEST by construction, as Go's os.Root does. The calls that allocate
// or free inodes can take a millisecond on a busy disk, so each runs on libuv's thread pool
// (napi_async_work) and returns a promise; many run at once.
#define _GNU_SOURCE
#include "errors.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define NAME_BUF 1024
#define TARGET_BUF 8192
/** Directory depth removeTree follows before giving up (ELOOP). */
#define MAX_REMOVE_DEPTH 4096

enum op { OP_MKDIR_OPEN, OP_CREATE, OP_SYMLINK, OP_MKNOD, OP_LINK, OP_RENAME, OP_REMOVE_TREE };

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  enum op op;
  int fd1, fd2;
  uint32_t mode, major, minor;
  char name1[NAME_BUF], name2[NAME_BUF];
  char target[TARGET_BUF];
  int result, err;
  const char* syscall;
} at_req;

static const int DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

/** mkdirat, then an O_NOFOLLOW descriptor of it. An existing directory is reused; anything else
 * in the way (a file, a symlink) is unlinked, never followed. */
static int mkdir_open(at_req* r) {
  for (int attempt = 0; attempt < 4; attempt++) {
    if (mkdirat(r->fd1, r->name1, r->mode) != 0 && errno != EEXIST) return r->syscall = "mkdirat", -1;
    int fd = openat(r->fd1, r->name1, DIR_FLAGS);
    if (fd >= 0) return fd;
    if (errno != ELOOP && errno != ENOTDIR) return r->syscall = "openat", -1;
    if (unlinkat(r->fd1, r->name1, 0) != 0 && errno != ENOENT) return r->syscall = "unlinkat", -1;
  }
  errno = EEXIST;
  return r->syscall = "mkdirat", -1;
}

/** Removes `name` in dirfd and, if it is a directory (not a symlink to one), all below it,
 * each level through its own O_NOFOLLOW descriptor. */
static int remove_tree(int dirfd, const char* name, int depth) {
  if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR) return -1;
  if (depth >= MAX_REMOVE_DEPTH) return errno = ELOOP, -1;
  int fd = openat(dirfd, name, DIR_FLAGS);
  if (fd < 0) return -1;
  DIR* d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    return errno = e, -1;
  }
  // Entries removed while reading may make readdir skip others: read again until rmdir works.
  int rc = 0;
  for (int pass = 0; pass < 16; pass++) {
    struct dirent* de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
      if (remove_tree(fd, de->d_name, depth + 1) != 0) {
        rc = -1;
        break;
      }
    }
    if (rc != 0) break;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) break;
    if (errno != ENOTEMPTY && errno != EEXIST) {
      rc = -1;
      break;
    }
    rewinddir(d);
    if (pass == 15) rc = -1;
  }
  int e = errno;
  closedir(d);
  errno = e;
  return rc;
}

static void execute(napi_env env, void* data) {
  (void)env;
  at_req* r = data;
  int rc = 0;
  errno = 0;
  switch (r->op) {
    case OP_MKDIR_OPEN:
      rc = mkdir_open(r);
      break;
    case OP_CREATE:
      r->syscall = "openat";
      rc = openat(r->fd1, r->name1, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, r->mode);
      break;
    case OP_SYMLINK:
      r->syscall = "symlinkat";
      rc = symlinkat(r->target, r->fd1, r->name1);
      break;
    case OP_MKNOD:
      r->syscall = "mknodat";
      rc = mknodat(r->fd1, r->name1, (mode_t)r->mode, makedev(r->major, r->minor));
      break;
    case OP_LINK:
      r->syscall = "linkat";  // flags 0: a symlink is linked itself, never followed
      rc = linkat(r->fd1, r->name1, r->fd2, r->name2, 0);
      break;
    case OP_RENAME:
      r->syscall = "renameat";
      rc = renameat(r->fd1, r->name1, r->fd2, r->name2);
      break;
    case OP_REMOVE_TREE:
      r->syscall = "unlinkat";
      rc = remove_tree(r->fd1, r->name1, 0);
      break;
  }
  r->result = rc;
  r->err = rc < 0 ? errno : 0;
}

static void complete(napi_env env, napi_status status, void* data) {
  at_req* r = data;
  if (status != napi_ok) r->err = r->err ? r->err : ECANCELED;
  if (r->err) {
    napi_reject_deferred(env, r->deferred, sg_errno_error(env, r->err, r->syscall ? r->syscall : "at", r->name1));
  } else {
    napi_value v;
    napi_create_int32(env, r->result, &v);
    napi_resolve_deferred(env, r->deferred, v);
  }
  napi_delete_async_work(env, r->work);
  free(r);
}

/** Argument layout per op: which of (fd, name, fd, name, mode, major, minor, target) it takes. */
typedef struct {
  const char* usage;
  int nfd, nname, nnum, target;
} layout;

static const layout LAYOUTS[] = {
  [OP_MKDIR_OPEN] = {"mkdirOpenAt(dirfd, name, mode)", 1, 1, 1, 0},
  [OP_CREATE] = {"createAt(dirfd, name, mode)", 1, 1, 1, 0},
  [OP_SYMLINK] = {"symlinkAt(target, dirfd, name)", 1, 1, 0, 1},
  [OP_MKNOD] = {"mknodAt(dirfd, name, mode, major, minor)", 1, 1, 3, 0},
  [OP_LINK] = {"linkAt(dirfd, name, newdirfd, newname)", 2, 2, 0, 0},
  [OP_RENAME] = {"renameAt(dirfd, name, newdirfd, newname)", 2, 2, 0, 0},
  [OP_REMOVE_TREE] = {"removeTreeAt(dirfd, name)", 1, 1, 0, 0},
};

static napi_value start(napi_env env, napi_callback_info info, enum op op) {
  const layout* l = &LAYOUTS[op];
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t want = (size_t)(l->target + 2 * l->nfd + l->nnum);
  at_req* r = calloc(1, sizeof *r);
  if (!r) return sg_throw_errno(env, ENOMEM, l->usage, NULL);
  r->op = op;
  size_t i = 0;
  int bad = argc < want;
  if (!bad && l->target) bad = sg_get_string(env, argv[i++], r->target, sizeof r->target);
  int* fds[2] = {&r->fd1, &r->fd2};
  char* names[2] = {r->name1, r->name2};
  for (int k = 0; !bad && k < l->nfd; k++) {
    bad = napi_get_value_int32(env, argv[i++], fds[k]) != napi_ok || sg_get_string(env, argv[i++], names[k], NAME_BUF) != 0;
  }
  uint32_t* nums[3] = {&r->mode, &r->major, &r->minor};
  for (int k = 0; !bad && k < l->nnum; k++) bad = napi_get_value_uint32(env, argv[i++], nums[k]) != napi_ok;
  if (bad) {
    free(r);
    napi_throw_type_error(env, NULL, l->usage);
    return NULL;
  }
  for (int k = 0; k < l->nname; k++) {
    if (!sg_is_component(names[k])) {
      napi_value e = sg_errno_error(env, EINVAL, l->usage, names[k]);
      free(r);
      napi_throw(env, e);
      return NULL;
    }
  }
  napi_value promise, resource;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_string_utf8(env, "stargz-get:fs-at", NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

#define ENTRY(fn, op) \
  static napi_value fn(napi_env env, napi_callback_info info) { return start(env, info, op); }
ENTRY(js_mkdir_open_at, OP_MKDIR_OPEN)
ENTRY(js_create_at, OP_CREATE)
ENTRY(js_symlink_at, OP_SYMLINK)
ENTRY(js_mknod_at, OP_MKNOD)
ENTRY(js_link_at, OP_LINK)
ENTRY(js_rename_at, OP_RENAME)
ENTRY(js_remove_tree_at, OP_REMOVE_TREE)

void sg_register_fs_at(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mkdirOpenAt", NULL, js_mkdir_open_at, NULL, NULL, NULL, napi_default, NULL},
    {"createAt", NULL, js_create_at, NULL, NULL, NULL, napi_default, NULL},
    {"symlinkAt", NULL, js_symlink_at, NULL, NULL, NULL, napi_default, NULL},
    {"mknodAt", NULL, js_mknod_at, NULL, NULL, NULL, napi_default, NULL},
    {"linkAt", NULL, js_link_at, NULL, NULL, NULL, napi_default, NULL},
    {"renameAt", NULL, js_rename_at, NULL, NULL, NULL, napi_default, NULL},
    {"removeTreeAt", NULL, js_remove_tree_at, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
