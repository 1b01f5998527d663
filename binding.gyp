{
  # The addon: N-API glue (native/binding) around the plain C++ core
  # (native/core). OpenSSL is NOT linked here: the node binary carries its own
  # OpenSSL 3 and exports its symbols, so the addon's EVP calls bind to that
  # one copy at load time (one OpenSSL per process; see docs/architecture.md,
  # "One OpenSSL"). The headers are node's own, from the same release.
  "targets": [
    {
      "target_name": "dne",
      "sources": [
        "native/binding/addon.cc",
        "native/binding/esp_engine_wrap.cc",
        "native/binding/filter_wrap.cc",
        "<!@(ls -1 native/core/*/*.cc)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/core"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-fvisibility=hidden", "-O2", "-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-O2", "-fno-exceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl"]
    }
  ]
}
