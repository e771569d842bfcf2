{
  "targets": [
    {
      "target_name": "unix_dgram",
      "sources": ["src/unix_dgram.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}
