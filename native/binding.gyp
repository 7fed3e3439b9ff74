{
  "targets": [
    {
      "target_name": "hailstone_udp",
      "sources": ["udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "hailstone_lock",
      "sources": ["lock.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
