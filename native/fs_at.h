// One file-system call relative to a directory descriptor, described by its arguments, so
// that the N-API glue (posix_extra.c) can run it on the main thread or on the thread pool.
#ifndef SG_FS_AT_H
#define SG_FS_AT_H
#include <stddef.h>
#include <stdint.h>

#define SG_NAME_BUF 1024
#define SG_XATTR_NAME_BUF 256
#define SG_TARGET_BUF 8192

enum sg_op {
  // allocate or free inodes: asynchronous
  OP_MKDIR_OPEN, OP_OPEN_BENEATH, OP_CREATE, OP_SYMLINK, OP_MKNOD, OP_LINK, OP_RENAME, OP_REMOVE_TREE,
  // metadata only: synchronous
  OP_FSETXATTR, OP_LSETXATTR, OP_LCHOWN, OP_CHMOD, OP_LUTIMES,
};

typedef struct {
  enum sg_op op;
  int fd[2];
  char name[2][SG_NAME_BUF];
  uint32_t num[3];
  double seconds;
  char xname[SG_XATTR_NAME_BUF];
  char target[SG_TARGET_BUF];
  void* data;
  size_t len;
  // results
  int result, err;
  const char* syscall;
} sg_req;

/** Runs the call; sets result (a descriptor, or 0), or err and syscall. */
void sg_run(sg_req* r);
#endif
