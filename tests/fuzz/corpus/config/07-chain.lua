cluster "a" { endpoints = { "127.0.0.1:1" } }
listener "a" { listen = ":1", plugins = { fz_hdr {} } }
listener "b" { listen = ":2", plugins = { fz_route { cluster = "a" }, fz_route { cluster = "a" } } }
listener "c" { listen = ":3", plugins = { fz_hdr {}, fz_stream {}, fz_route { cluster = "a" } } }
listener "d" { listen = ":4", protocol = "tcp", cluster = "a", xff = true, plugins = { fz_stream {}, fz_hdr {} } }
listener "e" { listen = ":5", cluster = "a", plugins = { fz_route "a" } }
