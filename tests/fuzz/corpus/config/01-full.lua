node { name = "edge-1", workers = 2, io = "posix", drain_timeout = "2s", access_log = "stderr", log_level = "debug" }
admin { listen = "127.0.0.1:15000" }
cluster "a" { endpoints = { "127.0.0.1:9001", { address = "[::1]:9002", weight = 2, labels = { version = "v2" } } },
  lb = "least_request", connect_timeout = "250ms", idle_timeout = 30,
  limits = { max_connections = 10, max_pending = 20, max_requests = 30 } }
cluster "b" { endpoints = { "10.0.0.1:80" } }
listener "in" {
  listen = "0.0.0.0:8080", protocol = "http", max_request_headers_kb = 16, max_uri = 2048, max_headers = 50,
  request_header_timeout = "5s", idle_timeout = "1m", timeout = "1.5s", max_request_body = 1048576, xff = false,
  plugins = {
    fz_stream { n = 1 },
    fz_hdr { set = { ["x-a"] = "1", ["x-b"] = "2" }, on = true },
    fz_route { cluster = "a", timeout = "2s", routes = { { prefix = "/b", cluster = "b", weight = 5 } } },
  },
}
listener "raw" { listen = "[::]:9000", protocol = "tcp", cluster = "b", plugins = { fz_stream {} } }
