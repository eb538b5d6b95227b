// With auto_unmount, fusermount stays behind holding one end of a socket and unmounts when it
// reads EOF, but only if opening the mount point then fails with ENOTCONN. A dying process
// releases its fds in one batch, and the kernel (6.x: task_work runs last-in first out)
// releases higher fds first, with reschedule points between them: if the socket goes first
// and the process is preempted, fusermount's open races the still-connected /dev/fuse, gets
// ECONNABORTED when the connection is torn down under it, and leaves a dead mount (seen under
// load, ~1 kill -9 in 20). So the socket must sit below /dev/fuse. libfuse (2 and 3) keeps no
// handle on it: it is the unix stream socket the mount created.
#define _GNU_SOURCE  // dup3
#include "unmount_socket.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void open_fds(unsigned char* seen) {
  memset(seen, 0, UNMOUNT_FD_SCAN);
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  for (struct dirent* e; (e = readdir(d));) {
    int fd = atoi(e->d_name);
    if (fd > 2 && fd < UNMOUNT_FD_SCAN && fd != dirfd(d)) seen[fd] = 1;
  }
  closedir(d);
}

static int is_unix_stream(int fd) {
  int domain = 0, type = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) return 0;
  len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static int is_fuse_device(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 && minor(st.st_rdev) == 229;
}

void unmount_socket_guard_begin(unmount_socket_guard* g) {
  g->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  open_fds(g->open_before);
}

void unmount_socket_guard_end(unmount_socket_guard* g, int fuse_fd) {
  if (g->spare < 0) return;
  unsigned char after[UNMOUNT_FD_SCAN];
  open_fds(after);
  int sock = -1;
  for (int fd = 3; fd < UNMOUNT_FD_SCAN; fd++) {
    if (!after[fd] || g->open_before[fd] || fd == g->spare) continue;
    if (fuse_fd < 0 && is_fuse_device(fd)) fuse_fd = fd;
    else if (sock < 0 && is_unix_stream(fd)) sock = fd;
  }
  if (fuse_fd >= 0 && sock > fuse_fd && g->spare < fuse_fd && dup3(sock, g->spare, O_CLOEXEC) == g->spare) {
    close(sock);
  } else {
    close(g->spare);
  }
  g->spare = -1;
}
