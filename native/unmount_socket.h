// Keeps auto_unmount working when a FUSE server is killed (see unmount_socket.c).
#ifndef STARGZ_UNMOUNT_SOCKET_H
#define STARGZ_UNMOUNT_SOCKET_H

#define UNMOUNT_FD_SCAN 4096

typedef struct {
  unsigned char open_before[UNMOUNT_FD_SCAN];  // fds open before the mount (1 = open)
  int spare;                                   // reserved below anything the mount opens
} unmount_socket_guard;

/** Before mounting with auto_unmount: reserves a low fd and notes which fds are open. */
void unmount_socket_guard_begin(unmount_socket_guard* g);
/**
 * After mounting (or failing to): moves fusermount's socket below /dev/fuse and lets go of
 * the spare. fuse_fd < 0: the mount failed, or the caller does not know it (it is found).
 */
void unmount_socket_guard_end(unmount_socket_guard* g, int fuse_fd);

#endif
