node { workers = 0, name = 5, io = "xdp", drain_timeout = "5 s", log_level = "loud" }
admin { listen = "localhost:1" }
cluster "a" { endpoints = { "0.0.0.0:80", { address = "x" }, 5 }, lb = "maglev", connect_timeout = 0, limits = 3 }
listener "l" { listen = "1.2.3.4:0", protocol = "udp", max_uri = 1e9, xff = "yes", plugins = { "fz_route" } }
