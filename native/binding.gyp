{
  "variables": {
    # The libfuse 3 session (fuse_ll.c) is built only where libfuse3's headers are
    # (Debian libfuse3-dev); without them `mount` uses fuse-native (src/fuse/backend.ts).
    "has_fuse3": "<!(pkg-config --exists fuse3 && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "posix_extra",
      "sources": ["posix_extra.c", "fs_at.c", "unmount_socket.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ],
  "conditions": [
    ["has_fuse3==1", {
      "targets": [
        {
          "target_name": "fuse_ll",
          "sources": ["fuse_ll.c", "unmount_socket.c"],
          "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
          "libraries": ["<!@(pkg-config --libs fuse3)"]
        }
      ]
    }]
  ]
}
