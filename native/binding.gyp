{
  "targets": [
    {
      "target_name": "posix_extra",
      "sources": ["posix_extra.c", "fs_at.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
