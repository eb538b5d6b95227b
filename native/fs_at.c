// File-system calls relative to a directory descriptor, on one entry name of that directory
// (the glue refuses a name with '/'), never following a symlink: what `sync` needs to keep
// every write inside DEST by construction, as Go's os.Root does.
#define _GNU_SOURCE
#include "fs_at.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/openat2.h>

/** Directory depth removeTree follows before giving up (ELOOP). */
#define MAX_REMOVE_DEPTH 4096

static const int DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

/** mkdirat, then an O_NOFOLLOW descriptor of it. An existing directory is reused; anything else
 * in the way (a file, a symlink) is unlinked, never followed. */
static int mkdir_open(sg_req* r) {
  for (int attempt = 0; attempt < 4; attempt++) {
    if (mkdirat(r->fd[0], r->name[0], r->num[0]) != 0 && errno != EEXIST) return r->syscall = "mkdirat", -1;
    int fd = openat(r->fd[0], r->name[0], DIR_FLAGS);
    if (fd >= 0) return fd;
    if (errno != ELOOP && errno != ENOTDIR) return r->syscall = "openat", -1;
    if (unlinkat(r->fd[0], r->name[0], 0) != 0 && errno != ENOENT) return r->syscall = "unlinkat", -1;
  }
  errno = EEXIST;
  return r->syscall = "mkdirat", -1;
}

/** Opens the directory at relative path `target` below fd[0] with no symlink (and no '..')
 * anywhere on the way: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or, where the kernel
 * lacks it, one openat(O_NOFOLLOW | O_DIRECTORY) per component. */
static int open_beneath(sg_req* r) {
  struct open_how how = {.flags = DIR_FLAGS, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, r->fd[0], r->target, &how, sizeof how);
  if (fd >= 0 || errno != ENOSYS) return fd;
  char path[SG_TARGET_BUF];
  snprintf(path, sizeof path, "%s", r->target);
  int cur = r->fd[0];
  char* save = NULL;
  for (char* c = strtok_r(path, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
      if (cur != r->fd[0]) close(cur);
      return errno = EXDEV, -1;  // what RESOLVE_BENEATH answers for an escape
    }
    int next = openat(cur, c, DIR_FLAGS);
    int e = errno;
    if (cur != r->fd[0]) close(cur);
    if (next < 0) return errno = e, -1;
    cur = next;
  }
  return cur != r->fd[0] ? cur : fcntl(cur, F_DUPFD_CLOEXEC, 0);
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
  int rc = -1;
  for (int pass = 0; pass < 16; pass++) {
    struct dirent* de;
    int failed = 0;
    while (!failed && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) failed = remove_tree(fd, de->d_name, depth + 1) != 0;
    }
    if (failed) break;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
      rc = 0;
      break;
    }
    if (errno != ENOTEMPTY && errno != EEXIST) break;
    rewinddir(d);
  }
  int e = errno;
  closedir(d);
  errno = e;
  return rc;
}

static int lutimes_at(sg_req* r) {
  double sec = floor(r->seconds);
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)sec;
  ts[0].tv_nsec = (long)llround((r->seconds - sec) * 1e9);
  if (ts[0].tv_nsec >= 1000000000L) ts[0].tv_sec++, ts[0].tv_nsec -= 1000000000L;
  ts[1] = ts[0];
  return utimensat(r->fd[0], r->name[0], ts, AT_SYMLINK_NOFOLLOW);
}

/** xattrs of an entry that cannot be opened: through /proc/self/fd/DIRFD/NAME, where the kernel
 * jumps to the directory itself, and lsetxattr does not follow NAME if it is a symlink. */
static int lsetxattr_at(sg_req* r) {
  char path[SG_NAME_BUF + 64];
  snprintf(path, sizeof path, "/proc/self/fd/%d/%s", r->fd[0], r->name[0]);
  return lsetxattr(path, r->xname, r->len ? r->data : "", r->len, 0);
}

void sg_run(sg_req* r) {
  static const char* const SYSCALL[] = {
    [OP_MKDIR_OPEN] = "mkdirat", [OP_OPEN_BENEATH] = "openat2", [OP_CREATE] = "openat", [OP_SYMLINK] = "symlinkat", [OP_MKNOD] = "mknodat",
    [OP_LINK] = "linkat", [OP_RENAME] = "renameat", [OP_REMOVE_TREE] = "unlinkat", [OP_FSETXATTR] = "fsetxattr",
    [OP_LSETXATTR] = "lsetxattr", [OP_LCHOWN] = "fchownat", [OP_CHMOD] = "fchmodat", [OP_LUTIMES] = "utimensat",
  };
  int fd = r->fd[0];
  const char* name = r->name[0];
  int rc = 0;
  r->syscall = SYSCALL[r->op];
  errno = 0;
  switch (r->op) {
    case OP_MKDIR_OPEN: rc = mkdir_open(r); break;
    case OP_OPEN_BENEATH: rc = open_beneath(r); break;
    case OP_CREATE: rc = openat(fd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, r->num[0]); break;
    case OP_SYMLINK: rc = symlinkat(r->target, fd, name); break;
    case OP_MKNOD: rc = mknodat(fd, name, (mode_t)r->num[0], makedev(r->num[1], r->num[2])); break;
    // flags 0: a symlink is linked itself, never followed
    case OP_LINK: rc = linkat(fd, name, r->fd[1], r->name[1], 0); break;
    case OP_RENAME: rc = renameat(fd, name, r->fd[1], r->name[1]); break;
    case OP_REMOVE_TREE: rc = remove_tree(fd, name, 0); break;
    case OP_FSETXATTR: rc = fsetxattr(fd, r->xname, r->len ? r->data : "", r->len, 0); break;
    case OP_LSETXATTR: rc = lsetxattr_at(r); break;
    case OP_LCHOWN: rc = fchownat(fd, name, r->num[0], r->num[1], AT_SYMLINK_NOFOLLOW); break;
    // AT_SYMLINK_NOFOLLOW: a symlink is refused (ENOTSUP), never followed
    case OP_CHMOD: rc = fchmodat(fd, name, (mode_t)r->num[0], AT_SYMLINK_NOFOLLOW); break;
    case OP_LUTIMES: rc = lutimes_at(r); break;
  }
  r->result = rc < 0 ? -1 : rc;
  r->err = rc < 0 ? (errno ? errno : EIO) : 0;
}
