{
  "targets": [
    {
      "target_name": "posix_extra",
      "sources": ["posix_extra.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
