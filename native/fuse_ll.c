// A low-level libfuse 3 session for `mount`: the kernel's metadata requests (LOOKUP, GETATTR,
// READDIRPLUS, READLINK, xattrs, STATFS) are answered here, in C, from an immutable table of
// the image's inodes, so a `find` never crosses into JavaScript. The table is filled one
// directory at a time: the first request that needs a directory's entries waits on it while
// JS is asked for them (one threadsafe call), and every request after that is served here.
// Reads go to JS (threadsafe call) and are answered through replyRead with the request's id.
// The kernel's requests are read by one thread running fuse_session_loop; replies may come
// from that thread or from node's (fuse_reply_* write to /dev/fuse and are thread-safe).
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "errors.h"
#include "unmount_socket.h"

#define ENTRY_HEADER 64    // see SectionWriter in src/fuse/lowlevel.ts (little-endian, 8-aligned)
#define SECTION_HEADER 16
#define MAX_NAME 255       // NAME_MAX: what the kernel accepts in a dentry
#define MAX_READ_SLOTS (1u << 20)
#define BLOCK_SIZE 4096

typedef struct waiter {
  struct waiter* next;
  fuse_req_t req;
  int plus;      // READDIR (0) or READDIRPLUS (1); LOOKUP when name is set
  size_t size;
  off_t off;
  char* name;
} waiter;

typedef struct {
  const char* name;
  uint64_t ino;
} dirent_ref;

typedef struct {
  uint32_t count;
  dirent_ref* entries;  // in JS's readdir order (what walk-ahead expects)
  uint32_t* by_name;    // indices into entries, by strcmp, for lookup
} dir_list;

typedef struct node {
  uint64_t ino, parent, size, blocks;
  uint32_t mode, nlink, uid, gid, rdev, mtime_nsec;
  int64_t mtime_sec;
  char* link;          // symlink target, NUL-terminated
  char* xattrs;        // packed: name NUL, u32 value length, value; xattr_count of them
  uint32_t xattr_bytes, xattr_count, xattr_list_bytes;
  dir_list* dir;       // directories: the listing once JS gave it
  waiter* waiters;     // requests waiting for that listing
  int loading;
} node;

enum msg_kind { MSG_DIR, MSG_READ, MSG_END };

typedef struct {
  enum msg_kind kind;
  uint64_t ino, id;
  size_t size;
  off_t off;
} msg;

typedef struct {
  fuse_req_t req;
  uint32_t gen;
  int used;
} read_slot;

/** Requests answered, by kind, and the time spent answering them here (per-op cost). */
enum stat_kind { ST_LOOKUP, ST_GETATTR, ST_READDIR, ST_READDIRPLUS, ST_OPENDIR, ST_READ, ST_XATTR, ST_OTHER, ST_DIRLOADS, ST_N };
static const char* STAT_NAMES[ST_N] = {"lookup", "getattr", "readdir", "readdirplus", "opendir", "read", "xattr", "other", "dirLoads"};

typedef struct session {
  pthread_mutex_t lock;
  struct fuse_session* se;
  pthread_t thread;
  int thread_started, ended, closing;
  napi_threadsafe_function tsfn;
  napi_ref on_dir, on_read, on_end;
  double timeout;
  node** nodes;  // by inode number, 1..max_ino
  uint64_t max_ino;
  char** blobs;  // names of the listings JS gave, freed with the session
  size_t nblobs, cap_blobs;
  read_slot* slots;
  uint32_t nslots, *free_slots, nfree;
  struct statvfs fs_stat;
  int no_open;
  uint64_t counts[ST_N], nanos[ST_N];
} session;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#define COUNTED(s, kind, t0) do { (s)->counts[kind]++; (s)->nanos[kind] += now_ns() - (t0); } while (0)

static session* of(fuse_req_t req) { return (session*)fuse_req_userdata(req); }

/** The node of an inode number; NULL when the kernel names one we never gave it. Under lock. */
static node* get_node(session* s, uint64_t ino) {
  return ino >= 1 && ino <= s->max_ino ? s->nodes[ino] : NULL;
}

static void fill_stat(const node* n, struct stat* st) {
  memset(st, 0, sizeof *st);
  st->st_ino = n->ino;
  st->st_mode = n->mode;
  st->st_nlink = n->nlink;
  st->st_uid = n->uid;
  st->st_gid = n->gid;
  st->st_rdev = n->rdev;
  st->st_size = (off_t)n->size;
  st->st_blocks = (blkcnt_t)n->blocks;
  st->st_blksize = BLOCK_SIZE;
  st->st_mtim.tv_sec = n->mtime_sec;
  st->st_mtim.tv_nsec = n->mtime_nsec;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

static void fill_entry(session* s, const node* n, struct fuse_entry_param* e) {
  memset(e, 0, sizeof *e);
  e->ino = n->ino;
  e->attr_timeout = s->timeout;
  e->entry_timeout = s->timeout;
  fill_stat(n, &e->attr);
}

/** Asks JS for a directory's entries (once); the caller holds the lock and has queued a waiter. */
static void request_dir(session* s, node* n) {
  if (n->loading || s->closing) return;
  msg* m = calloc(1, sizeof *m);
  if (!m) return;
  m->kind = MSG_DIR;
  m->ino = n->ino;
  n->loading = 1;
  s->counts[ST_DIRLOADS]++;
  if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
    n->loading = 0;
    free(m);
  }
}

/** Queues req until n's listing arrives; 0, or the errno to answer now (closing: JS answers nothing more). */
static int queue_waiter(session* s, node* n, fuse_req_t req, int plus, size_t size, off_t off, const char* name) {
  if (s->closing) return EIO;
  waiter* w = calloc(1, sizeof *w);
  if (!w || (name && !(w->name = strdup(name)))) {
    free(w);
    return ENOMEM;
  }
  w->req = req;
  w->plus = plus;
  w->size = size;
  w->off = off;
  w->next = n->waiters;
  n->waiters = w;
  request_dir(s, n);
  return 0;
}

static node* find_child(session* s, const dir_list* d, const char* name) {
  size_t lo = 0, hi = d->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(d->entries[d->by_name[mid]].name, name);
    if (c == 0) return get_node(s, d->entries[d->by_name[mid]].ino);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

// ---- answers from the table (the caller holds the lock) ----

static void answer_lookup(session* s, fuse_req_t req, node* dir, const char* name) {
  struct fuse_entry_param e;
  node* child = strlen(name) > MAX_NAME ? NULL : find_child(s, dir->dir, name);
  if (child) {
    fill_entry(s, child, &e);
  } else {
    // A negative entry the kernel keeps as long as a positive one: the image never changes.
    memset(&e, 0, sizeof e);
    e.entry_timeout = s->timeout;
  }
  fuse_reply_entry(req, &e);
}

static void answer_readdir(session* s, fuse_req_t req, node* dir, int plus, size_t size, off_t off) {
  const dir_list* d = dir->dir;
  node* parent = get_node(s, dir->parent);
  if (!parent) parent = dir;
  char* buf = malloc(size);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  size_t used = 0;
  // Entry i of the stream: 0 '.', 1 '..', then the listing; an entry's offset is the next one's index.
  for (uint64_t i = off < 0 ? 0 : (uint64_t)off; i < (uint64_t)d->count + 2; i++) {
    const node* n = i == 0 ? dir : i == 1 ? parent : get_node(s, d->entries[i - 2].ino);
    const char* name = i == 0 ? "." : i == 1 ? ".." : d->entries[i - 2].name;
    if (!n) continue;
    size_t need;
    if (plus) {
      struct fuse_entry_param e;
      fill_entry(s, n, &e);
      need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(i + 1));
    } else {
      struct stat st;
      memset(&st, 0, sizeof st);
      st.st_ino = n->ino;
      st.st_mode = n->mode;
      need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

// ---- the kernel's requests ----

static void op_init(void* userdata, struct fuse_conn_info* conn) {
  session* s = userdata;
  // Every listing comes with its attributes: no LOOKUP per entry after a readdir.
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  s->no_open = (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  session* s = of(req);
  uint64_t t0 = now_ns();
  int err;
  pthread_mutex_lock(&s->lock);
  node* dir = get_node(s, parent);
  if (!dir || !S_ISDIR(dir->mode)) fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
  else if (dir->dir) answer_lookup(s, req, dir, name);
  else if ((err = queue_waiter(s, dir, req, 0, 0, 0, name)) != 0) fuse_reply_err(req, err);
  COUNTED(s, ST_LOOKUP, t0);
  pthread_mutex_unlock(&s->lock);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)fi;
  session* s = of(req);
  uint64_t t0 = now_ns();
  struct stat st;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  if (n) fill_stat(n, &st);
  COUNTED(s, ST_GETATTR, t0);
  pthread_mutex_unlock(&s->lock);
  if (n) fuse_reply_attr(req, &st, s->timeout);
  else fuse_reply_err(req, ENOENT);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus) {
  session* s = of(req);
  uint64_t t0 = now_ns();
  int err;
  pthread_mutex_lock(&s->lock);
  node* dir = get_node(s, ino);
  if (!dir || !S_ISDIR(dir->mode)) fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
  else if (dir->dir) answer_readdir(s, req, dir, plus, size, off);
  else if ((err = queue_waiter(s, dir, req, plus, size, off, NULL)) != 0) fuse_reply_err(req, err);
  COUNTED(s, plus ? ST_READDIRPLUS : ST_READDIR, t0);
  pthread_mutex_unlock(&s->lock);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  readdir_common(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  readdir_common(req, ino, size, off, 1);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  (void)ino;
  session* s = of(req);
  s->counts[ST_OPENDIR]++;
  // Answered, not ENOSYS (FUSE_CAP_NO_OPENDIR_SUPPORT): fusermount3's auto_unmount decides
  // a killed server's mount is dead only when opening its root fails with ENOTCONN, which a
  // kernel that opens directories by itself never reports. The kernel caches the listings.
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  session* s = of(req);
  s->counts[ST_OTHER]++;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  int type = n ? (int)(n->mode & S_IFMT) : 0;
  pthread_mutex_unlock(&s->lock);
  if (!n) return (void)fuse_reply_err(req, ENOENT);
  if (type == S_IFDIR) return (void)fuse_reply_err(req, EISDIR);
  // As for directories: a kernel that can skips OPEN and RELEASE from now on, keeping the
  // page cache across opens (FOPEN_KEEP_CACHE is its default then). Reads find files by inode.
  if (s->no_open) return (void)fuse_reply_err(req, ENOSYS);
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  (void)fi;
  session* s = of(req);
  uint64_t t0 = now_ns();
  int err = 0;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  msg* m = NULL;
  if (!n) err = ENOENT;
  else if (S_ISDIR(n->mode)) err = EISDIR;
  else if (s->closing) err = EIO;
  else if (s->nfree == 0 && s->nslots >= MAX_READ_SLOTS) err = EAGAIN;
  else if (!(m = calloc(1, sizeof *m))) err = ENOMEM;
  if (!err && s->nfree == 0) {
    // Grow the slot table: reads in flight are few (the kernel bounds them), so this is rare.
    uint32_t cap = s->nslots ? s->nslots * 2 : 256;
    read_slot* slots = realloc(s->slots, cap * sizeof *slots);
    uint32_t* free_slots = slots ? realloc(s->free_slots, cap * sizeof *free_slots) : NULL;
    if (slots) s->slots = slots;
    if (!free_slots) {
      err = ENOMEM;
    } else {
      s->free_slots = free_slots;
      for (uint32_t i = cap; i > s->nslots; i--) {
        s->slots[i - 1] = (read_slot){0};
        s->free_slots[s->nfree++] = i - 1;
      }
      s->nslots = cap;
    }
  }
  if (!err) {
    uint32_t i = s->free_slots[--s->nfree];
    s->slots[i].req = req;
    s->slots[i].used = 1;
    s->slots[i].gen++;
    m->kind = MSG_READ;
    m->ino = ino;
    m->id = ((uint64_t)s->slots[i].gen << 20) | i;  // < 2^52: exact as a JS number
    m->size = size;
    m->off = off;
    if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
      s->slots[i].used = 0;
      s->free_slots[s->nfree++] = i;
      err = EIO;
    } else {
      m = NULL;
    }
  }
  COUNTED(s, ST_READ, t0);
  pthread_mutex_unlock(&s->lock);
  free(m);
  if (err) fuse_reply_err(req, err);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  session* s = of(req);
  s->counts[ST_OTHER]++;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  const char* link = n ? n->link : NULL;  // immutable once set
  pthread_mutex_unlock(&s->lock);
  if (!n) fuse_reply_err(req, ENOENT);
  else if (!link) fuse_reply_err(req, EINVAL);
  else fuse_reply_readlink(req, link);
}

/** Answers a size query (size 0), ERANGE for a short buffer, else the bytes. */
static void reply_sized(fuse_req_t req, const char* data, size_t len, size_t size) {
  if (size == 0) fuse_reply_xattr(req, len);
  else if (len > size) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, data, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  session* s = of(req);
  s->counts[ST_XATTR]++;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  const char *p = n ? n->xattrs : NULL, *value = NULL;
  uint32_t len = 0;
  for (uint32_t i = 0; n && i < n->xattr_count; i++) {
    size_t nl = strlen(p);
    memcpy(&len, p + nl + 1, 4);
    if (strcmp(p, name) == 0) {
      value = p + nl + 5;
      break;
    }
    p += nl + 5 + len;
  }
  pthread_mutex_unlock(&s->lock);
  if (!n) fuse_reply_err(req, ENOENT);
  else if (!value) fuse_reply_err(req, ENODATA);
  else reply_sized(req, value, len, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  session* s = of(req);
  s->counts[ST_XATTR]++;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  size_t total = n ? n->xattr_list_bytes : 0;
  char* list = total ? malloc(total) : NULL;
  if (list) {
    const char* p = n->xattrs;
    size_t at = 0;
    for (uint32_t i = 0; i < n->xattr_count; i++) {
      size_t nl = strlen(p);
      uint32_t len;
      memcpy(&len, p + nl + 1, 4);
      memcpy(list + at, p, nl + 1);
      at += nl + 1;
      p += nl + 5 + len;
    }
  }
  pthread_mutex_unlock(&s->lock);
  if (!n) fuse_reply_err(req, ENOENT);
  else if (total && !list) fuse_reply_err(req, ENOMEM);
  else reply_sized(req, list, total, size);
  free(list);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  session* s = of(req);
  s->counts[ST_OTHER]++;
  fuse_reply_statfs(req, &s->fs_stat);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  session* s = of(req);
  s->counts[ST_OTHER]++;
  pthread_mutex_lock(&s->lock);
  node* n = get_node(s, ino);
  pthread_mutex_unlock(&s->lock);
  fuse_reply_err(req, !n ? ENOENT : (mask & W_OK) ? EROFS : 0);
}

// Writes: the mount is read-only (-o ro) and the kernel refuses most of them itself; these
// answer whatever reaches us.
static void refuse(fuse_req_t req) { of(req)->counts[ST_OTHER]++; fuse_reply_err(req, EROFS); }
static void op_setattr(fuse_req_t r, fuse_ino_t i, struct stat* a, int t, struct fuse_file_info* f) { (void)i; (void)a; (void)t; (void)f; refuse(r); }
static void op_mknod(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) { (void)p; (void)n; (void)m; (void)d; refuse(r); }
static void op_mkdir(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) { (void)p; (void)n; (void)m; refuse(r); }
static void op_unlink(fuse_req_t r, fuse_ino_t p, const char* n) { (void)p; (void)n; refuse(r); }
static void op_symlink(fuse_req_t r, const char* l, fuse_ino_t p, const char* n) { (void)l; (void)p; (void)n; refuse(r); }
static void op_rename(fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn, unsigned f) { (void)p; (void)n; (void)np; (void)nn; (void)f; refuse(r); }
static void op_link(fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char* n) { (void)i; (void)p; (void)n; refuse(r); }
static void op_write(fuse_req_t r, fuse_ino_t i, const char* b, size_t s, off_t o, struct fuse_file_info* f) { (void)i; (void)b; (void)s; (void)o; (void)f; refuse(r); }
static void op_setxattr(fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) { (void)i; (void)n; (void)v; (void)s; (void)f; refuse(r); }
static void op_removexattr(fuse_req_t r, fuse_ino_t i, const char* n) { (void)i; (void)n; refuse(r); }
static void op_create(fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, struct fuse_file_info* f) { (void)p; (void)n; (void)m; (void)f; refuse(r); }
static void op_fallocate(fuse_req_t r, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info* f) { (void)i; (void)m; (void)o; (void)l; (void)f; refuse(r); }

static const struct fuse_lowlevel_ops OPS = {
  .init = op_init,
  .lookup = op_lookup,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .open = op_open,
  .read = op_read,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .statfs = op_statfs,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
  .access = op_access,
  .setattr = op_setattr,
  .mknod = op_mknod,
  .mkdir = op_mkdir,
  .unlink = op_unlink,
  .rmdir = op_unlink,
  .symlink = op_symlink,
  .rename = op_rename,
  .link = op_link,
  .write = op_write,
  .setxattr = op_setxattr,
  .removexattr = op_removexattr,
  .create = op_create,
  .fallocate = op_fallocate,
};

// ---- the table, from JS's encoding (ours, but bound-checked all the same) ----

typedef struct {
  const uint8_t *base, *p;  // base: where entries' 8-alignment is counted from
  size_t left;
} cursor;

static int take(cursor* c, size_t n, const uint8_t** out) {
  if (c->left < n) return -1;
  *out = c->p;
  c->p += n;
  c->left -= n;
  return 0;
}

static uint32_t u32at(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t u16at(const uint8_t* p) { uint16_t v; memcpy(&v, p, 2); return v; }
static double f64at(const uint8_t* p) { double v; memcpy(&v, p, 8); return v; }

static int to_u64(double d, uint64_t* out) {
  if (!(d >= 0 && d <= 9007199254740992.0)) return -1;
  *out = (uint64_t)d;
  return 0;
}

/** One encoded entry into a node (created if new); with ref, its name is copied into blob and ref set. */
static int parse_entry(session* s, cursor* c, uint64_t parent, char* blob, size_t* blob_at, dirent_ref* ref) {
  const uint8_t* h;
  if (take(c, ENTRY_HEADER, &h)) return -1;
  uint64_t ino = (uint64_t)u32at(h) | ((uint64_t)u32at(h + 4) << 32);
  uint16_t name_len = u16at(h + 56), xattr_count = u16at(h + 58);
  uint32_t link_len = u32at(h + 60);
  const uint8_t *name, *link;
  if (ino < 1 || ino > s->max_ino || name_len > MAX_NAME) return -1;
  if (take(c, name_len, &name) || memchr(name, 0, name_len) || memchr(name, '/', name_len)) return -1;
  if (take(c, link_len, &link) || memchr(link, 0, link_len)) return -1;
  // xattrs: the records as they come, then rewritten packed (name NUL, length, value).
  const uint8_t* xstart = c->p;
  size_t xbytes = 0, xlist = 0;
  for (uint32_t i = 0; i < xattr_count; i++) {
    const uint8_t *xh, *xn, *xv;
    if (take(c, 6, &xh)) return -1;
    uint16_t nl = u16at(xh);
    uint32_t vl = u32at(xh + 2);
    if (nl == 0 || take(c, nl, &xn) || memchr(xn, 0, nl) || take(c, vl, &xv)) return -1;
    xbytes += nl + 5u + vl;
    xlist += nl + 1u;
  }
  // Entries start 8-aligned (the padding is zeros, and may be missing after the last).
  size_t pad = (8 - (size_t)(c->p - c->base) % 8) % 8;
  if (pad > c->left) pad = c->left;
  c->p += pad;
  c->left -= pad;
  if (ref) {
    memcpy(blob + *blob_at, name, name_len);
    blob[*blob_at + name_len] = '\0';
    ref->name = blob + *blob_at;
    ref->ino = ino;
    *blob_at += name_len + 1u;
  }
  if (s->nodes[ino]) return 0;  // a hardlink's second name, or listed before: the same inode
  node* n = calloc(1, sizeof *n);
  if (!n) return -1;
  uint64_t size, blocks;
  double mtime = f64at(h + 48);
  if (to_u64(f64at(h + 32), &size) || to_u64(f64at(h + 40), &blocks) || !isfinite(mtime)) {
    free(n);
    return -1;
  }
  n->ino = ino;
  n->parent = parent;
  n->mode = u32at(h + 8);
  n->nlink = u32at(h + 12);
  n->uid = u32at(h + 16);
  n->gid = u32at(h + 20);
  n->rdev = u32at(h + 24);
  n->size = size;
  n->blocks = blocks;
  double sec = floor(mtime / 1000);
  n->mtime_sec = (int64_t)sec;
  n->mtime_nsec = (uint32_t)((mtime - sec * 1000) * 1e6);
  if (S_ISLNK(n->mode)) {
    if (!(n->link = malloc(link_len + 1u))) goto fail;
    memcpy(n->link, link, link_len);
    n->link[link_len] = '\0';
  }
  if (xattr_count) {
    if (!(n->xattrs = malloc(xbytes))) goto fail;
    const uint8_t* p = xstart;
    char* out = n->xattrs;
    for (uint32_t i = 0; i < xattr_count; i++) {
      uint16_t nl = u16at(p);
      uint32_t vl = u32at(p + 2);
      memcpy(out, p + 6, nl);
      out[nl] = '\0';
      memcpy(out + nl + 1, &vl, 4);
      memcpy(out + nl + 5, p + 6 + nl, vl);
      out += nl + 5u + vl;
      p += 6u + nl + vl;
    }
    n->xattr_bytes = (uint32_t)xbytes;
    n->xattr_count = xattr_count;
    n->xattr_list_bytes = (uint32_t)xlist;
  }
  s->nodes[ino] = n;
  return 0;
fail:
  free(n->link);
  free(n);
  return -1;
}


// qsort has no context argument: set just before each sort (always on node's thread, under the lock).
static const dirent_ref* g_sort_entries;
static int by_name_cmp(const void* a, const void* b) {

  return strcmp(g_sort_entries[*(const uint32_t*)a].name, g_sort_entries[*(const uint32_t*)b].name);
}

static int keep_blob(session* s, char* blob) {
  if (s->nblobs == s->cap_blobs) {
    size_t cap = s->cap_blobs ? s->cap_blobs * 2 : 64;
    char** b = realloc(s->blobs, cap * sizeof *b);
    if (!b) return -1;
    s->blobs = b;
    s->cap_blobs = cap;
  }
  s->blobs[s->nblobs++] = blob;
  return 0;
}

/** Takes the waiters of every directory just listed, to be answered after the lock is dropped. */
typedef struct answered {
  struct answered* next;
  node* dir;
  waiter* waiters;
} answered;

/**
 * Sections: dir ino (u64 as two u32), entry count, reserved; then the entries. A section of a
 * directory already listed is skipped; every directory named must already be in the table.
 */
static int parse_sections(session* s, const uint8_t* data, size_t len, answered** done) {
  cursor c = {data, data, len};
  // Names of every entry, NUL-terminated: never more bytes than the buffer itself.
  char* blob = malloc(len + 1);
  if (!blob || keep_blob(s, blob)) {
    free(blob);
    return -1;
  }
  size_t blob_at = 0;
  while (c.left > 0) {
    const uint8_t* h;
    if (take(&c, SECTION_HEADER, &h)) return -1;
    uint64_t ino = (uint64_t)u32at(h) | ((uint64_t)u32at(h + 4) << 32);
    uint32_t count = u32at(h + 8);
    node* dir = get_node(s, ino);
    if (!dir || !S_ISDIR(dir->mode) || count > c.left / ENTRY_HEADER) return -1;
    if (dir->dir) {
      for (uint32_t i = 0; i < count; i++) if (parse_entry(s, &c, ino, blob, &blob_at, NULL)) return -1;
      continue;
    }
    dir_list* d = calloc(1, sizeof *d);
    if (!d) return -1;
    d->entries = calloc(count ? count : 1, sizeof *d->entries);
    d->by_name = calloc(count ? count : 1, sizeof *d->by_name);
    if (!d->entries || !d->by_name) goto fail;
    for (uint32_t i = 0; i < count; i++) {
      if (parse_entry(s, &c, ino, blob, &blob_at, &d->entries[i])) goto fail;
      d->by_name[i] = i;
    }
    d->count = count;
    g_sort_entries = d->entries;
    qsort(d->by_name, count, sizeof *d->by_name, by_name_cmp);
    dir->dir = d;
    dir->loading = 0;
    if (dir->waiters) {
      answered* a = malloc(sizeof *a);
      if (a) {
        *a = (answered){*done, dir, dir->waiters};
        dir->waiters = NULL;
        *done = a;
      }
    }
    continue;
  fail:
    free(d->entries);
    free(d->by_name);
    free(d);
    return -1;
  }
  return 0;
}

static void answer_waiters(session* s, answered* done) {
  while (done) {
    answered* a = done;
    done = a->next;
    for (waiter* w = a->waiters; w;) {
      waiter* next = w->next;
      if (w->name) answer_lookup(s, w->req, a->dir, w->name);
      else answer_readdir(s, w->req, a->dir, w->plus, w->size, w->off);
      free(w->name);
      free(w);
      w = next;
    }
    free(a);
  }
}

/** The directory's waiting requests get err (its listing cannot be had). Under lock. */
static void fail_waiters(node* dir, int err) {
  for (waiter* w = dir->waiters; w;) {
    waiter* next = w->next;
    fuse_reply_err(w->req, err);
    free(w->name);
    free(w);
    w = next;
  }
  dir->waiters = NULL;
  dir->loading = 0;
}

// ---- node's side ----

static void call_js(napi_env env, napi_value fn, void* context, void* data) {
  (void)fn;
  session* s = context;
  msg* m = data;
  if (!env) {  // torn down: nothing more reaches JS
    free(m);
    return;
  }
  napi_value cb, undefined, argv[4], result;
  napi_get_undefined(env, &undefined);
  if (m->kind == MSG_DIR) {
    napi_get_reference_value(env, s->on_dir, &cb);
    napi_create_double(env, (double)m->ino, &argv[0]);
    napi_call_function(env, undefined, cb, 1, argv, &result);
  } else if (m->kind == MSG_READ) {
    napi_get_reference_value(env, s->on_read, &cb);
    napi_create_double(env, (double)m->id, &argv[0]);
    napi_create_double(env, (double)m->ino, &argv[1]);
    napi_create_double(env, (double)m->size, &argv[2]);
    napi_create_double(env, (double)m->off, &argv[3]);
    napi_call_function(env, undefined, cb, 4, argv, &result);
  } else {
    napi_get_reference_value(env, s->on_end, &cb);
    napi_call_function(env, undefined, cb, 0, argv, &result);
  }
  free(m);
  // A throwing callback is JS's bug; it must not leave a pending exception in the addon.
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
}

static void* loop_thread(void* arg) {
  session* s = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);  // signals are node's, on its own thread
  fuse_session_loop(s->se);
  pthread_mutex_lock(&s->lock);
  s->ended = 1;
  if (!s->closing) {
    msg* m = calloc(1, sizeof *m);
    if (m) {
      m->kind = MSG_END;
      if (napi_call_threadsafe_function(s->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
    }
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static void free_session(session* s) {
  for (uint64_t i = 1; s->nodes && i <= s->max_ino; i++) {
    node* n = s->nodes[i];
    if (!n) continue;
    if (n->dir) {
      free(n->dir->entries);
      free(n->dir->by_name);
      free(n->dir);
    }
    free(n->link);
    free(n->xattrs);
    free(n);
  }
  for (size_t i = 0; i < s->nblobs; i++) free(s->blobs[i]);
  free(s->blobs);
  free(s->nodes);
  free(s->slots);
  free(s->free_slots);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static napi_value throw_msg(napi_env env, const char* code, const char* text) {
  napi_throw_error(env, code, text);
  return NULL;
}

static session* arg_session(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) throw_msg(env, "EINVAL", "not a FUSE session");
  return p;
}

/** The call's first `want` arguments into argv, the first being a session; NULL (thrown) if not. */
static session* session_call(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    throw_msg(env, "EINVAL", "missing arguments");
    return NULL;
  }
  return arg_session(env, argv[0]);
}

static int get_prop(napi_env env, napi_value obj, const char* key, napi_value* out) {
  return napi_get_named_property(env, obj, key, out) == napi_ok ? 0 : -1;
}

static double get_number(napi_env env, napi_value obj, const char* key) {
  napi_value v;
  double d = NAN;
  if (!get_prop(env, obj, key, &v)) napi_get_value_double(env, v, &d);
  return d;
}

/**
 * mount({mountpoint, options, debug, maxIno, timeout, root, statfs: {blocks, files, namemax},
 *        onDir(ino), onRead(id, ino, size, offset), onEnd()}) → session.
 * `root` is one encoded entry (the root directory, inode 1). Throws when libfuse cannot mount.
 */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_msg(env, "EINVAL", "mount needs its options");
  char mountpoint[4096], options[4096];
  if (get_prop(env, argv[0], "mountpoint", &v) || sg_get_string(env, v, mountpoint, sizeof mountpoint)) return throw_msg(env, "EINVAL", "bad mountpoint");
  if (get_prop(env, argv[0], "options", &v) || sg_get_string(env, v, options, sizeof options)) return throw_msg(env, "EINVAL", "bad options");
  bool debug = false;
  if (!get_prop(env, argv[0], "debug", &v)) napi_get_value_bool(env, v, &debug);
  double max_ino = get_number(env, argv[0], "maxIno"), timeout = get_number(env, argv[0], "timeout");
  if (!(max_ino >= 1 && max_ino <= 4294967295.0) || !(timeout >= 0)) return throw_msg(env, "EINVAL", "bad maxIno or timeout");

  session* s = calloc(1, sizeof *s);
  if (!s) return throw_msg(env, "ENOMEM", "out of memory");
  pthread_mutex_init(&s->lock, NULL);
  s->max_ino = (uint64_t)max_ino;
  s->timeout = timeout;
  s->nodes = calloc(s->max_ino + 1, sizeof *s->nodes);
  if (!s->nodes) {
    free_session(s);
    return throw_msg(env, "ENOMEM", "out of memory for the inode table");
  }
  napi_value statfs, root;
  s->fs_stat.f_bsize = s->fs_stat.f_frsize = BLOCK_SIZE;
  s->fs_stat.f_flag = ST_RDONLY;
  if (!get_prop(env, argv[0], "statfs", &statfs)) {
    s->fs_stat.f_blocks = (fsblkcnt_t)fmax(0, get_number(env, statfs, "blocks"));
    s->fs_stat.f_files = (fsfilcnt_t)fmax(0, get_number(env, statfs, "files"));
    s->fs_stat.f_namemax = (unsigned long)fmax(0, get_number(env, statfs, "namemax"));
  }
  void* root_data = NULL;
  size_t root_len = 0;
  if (get_prop(env, argv[0], "root", &root) || napi_get_buffer_info(env, root, &root_data, &root_len) != napi_ok) {
    free_session(s);
    return throw_msg(env, "EINVAL", "root must be a Buffer");
  }
  cursor c = {root_data, root_data, root_len};
  if (parse_entry(s, &c, 1, NULL, NULL, NULL) || !s->nodes[1] || !S_ISDIR(s->nodes[1]->mode)) {
    free_session(s);
    return throw_msg(env, "EINVAL", "bad root entry (inode 1, a directory)");
  }
  napi_value on_dir, on_read, on_end, name;
  if (get_prop(env, argv[0], "onDir", &on_dir) || get_prop(env, argv[0], "onRead", &on_read) || get_prop(env, argv[0], "onEnd", &on_end)) {
    free_session(s);
    return throw_msg(env, "EINVAL", "callbacks missing");
  }
  napi_create_reference(env, on_dir, 1, &s->on_dir);
  napi_create_reference(env, on_read, 1, &s->on_read);
  napi_create_reference(env, on_end, 1, &s->on_end);
  napi_create_string_utf8(env, "stargz-get fuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn) != napi_ok) {
    free_session(s);
    return throw_msg(env, "EIO", "cannot create the threadsafe function");
  }

  char* args_v[] = {"stargz-get", "-o", options, "-d"};
  struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, args_v);
  s->se = fuse_session_new(&args, &OPS, sizeof OPS, s);
  if (!s->se) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_msg(env, "EINVAL", "libfuse refused the mount options (see stderr)");
  }
  unmount_socket_guard guard;
  int guarded = strstr(options, "auto_unmount") != NULL;
  if (guarded) unmount_socket_guard_begin(&guard);
  if (fuse_session_mount(s->se, mountpoint) != 0) {
    if (guarded) unmount_socket_guard_end(&guard, -1);
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_msg(env, "EIO", "libfuse could not mount (see stderr)");
  }
  if (guarded) unmount_socket_guard_end(&guard, fuse_session_fd(s->se));
  if (pthread_create(&s->thread, NULL, loop_thread, s) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free_session(s);
    return throw_msg(env, "EAGAIN", "cannot start the FUSE thread");
  }
  s->thread_started = 1;
  napi_value out;
  napi_create_external(env, s, NULL, NULL, &out);
  return out;
}

/**
 * provideDirs(session, asked, buffer): the listings of one or more directories (see
 * parse_sections); `asked` is the directory onDir asked for (0: none), whose waiting
 * requests get EIO if the buffer did not list it, rather than wait for ever.
 */
static napi_value js_provide_dirs(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  session* s = session_call(env, info, 3, argv);
  if (!s) return NULL;
  double asked = 0;
  napi_get_value_double(env, argv[1], &asked);
  void* data;
  size_t len;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) return throw_msg(env, "EINVAL", "listing must be a Buffer");
  answered* done = NULL;
  pthread_mutex_lock(&s->lock);
  int bad = parse_sections(s, data, len, &done);
  answer_waiters(s, done);
  node* dir = asked >= 1 && asked <= (double)s->max_ino ? get_node(s, (uint64_t)asked) : NULL;
  if (dir && !dir->dir) fail_waiters(dir, EIO);
  pthread_mutex_unlock(&s->lock);
  if (bad) return throw_msg(env, "EINVAL", "malformed directory listing");
  return NULL;
}

/** replyRead(session, id, buffer, result): result ≥ 0 sends that many bytes of buffer, < 0 is -errno. Once per id. */
static napi_value js_reply_read(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  session* s = session_call(env, info, 4, argv);
  if (!s) return NULL;
  double id_d, res_d;
  napi_get_value_double(env, argv[1], &id_d);
  napi_get_value_double(env, argv[3], &res_d);
  void* data = NULL;
  size_t len = 0;
  bool is_buffer = false;
  napi_is_buffer(env, argv[2], &is_buffer);
  if (is_buffer) napi_get_buffer_info(env, argv[2], &data, &len);
  uint64_t id = id_d >= 0 && id_d < 4503599627370496.0 ? (uint64_t)id_d : UINT64_MAX;
  uint32_t i = (uint32_t)(id & (MAX_READ_SLOTS - 1));
  fuse_req_t req = NULL;
  pthread_mutex_lock(&s->lock);
  if (id != UINT64_MAX && i < s->nslots && s->slots[i].used && s->slots[i].gen == (uint32_t)(id >> 20)) {
    req = s->slots[i].req;
    s->slots[i].used = 0;
    s->free_slots[s->nfree++] = i;
  }
  pthread_mutex_unlock(&s->lock);
  if (!req) return throw_msg(env, "EINVAL", "no read in flight with that id (answered twice?)");
  if (res_d < 0) fuse_reply_err(req, (int)-res_d);
  else fuse_reply_buf(req, data, (size_t)fmin(res_d, (double)len));
  return NULL;
}

/**
 * close(session): nothing more reaches JS and node may exit. Call once the kernel mount is
 * gone (the loop then ends by itself) or when giving up on it; frees everything if the loop
 * has ended, else leaves that to process exit. Returns whether the loop had ended.
 */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  session* s = session_call(env, info, 1, argv);
  if (!s) return NULL;
  pthread_mutex_lock(&s->lock);
  int was_closing = s->closing, ended = s->ended;
  s->closing = 1;
  pthread_mutex_unlock(&s->lock);
  if (!was_closing) {
    fuse_session_exit(s->se);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    napi_delete_reference(env, s->on_dir);
    napi_delete_reference(env, s->on_read);
    napi_delete_reference(env, s->on_end);
    if (ended) {
      pthread_join(s->thread, NULL);
      fuse_session_unmount(s->se);  // closes /dev/fuse; the mount is already gone
      fuse_session_destroy(s->se);
      free_session(s);
    }
  }
  napi_get_boolean(env, ended, &out);
  return out;
}

/** stats(session): requests answered by kind, and nanoseconds spent in C on them. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  session* s = session_call(env, info, 1, argv);
  if (!s) return NULL;
  napi_create_object(env, &out);
  pthread_mutex_lock(&s->lock);
  for (int k = 0; k < ST_N; k++) {
    napi_value pair;
    napi_create_object(env, &pair);
    napi_create_double(env, (double)s->counts[k], &v);
    napi_set_named_property(env, pair, "count", v);
    napi_create_double(env, (double)s->nanos[k], &v);
    napi_set_named_property(env, pair, "ns", v);
    napi_set_named_property(env, out, STAT_NAMES[k], pair);
  }
  pthread_mutex_unlock(&s->lock);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
    {"provideDirs", NULL, js_provide_dirs, NULL, NULL, NULL, napi_default, NULL},
    {"replyRead", NULL, js_reply_read, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
    {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
