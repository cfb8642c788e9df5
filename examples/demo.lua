node { name = "demo", workers = 2 }
admin { listen = "127.0.0.1:15000" }
cluster "v1" { endpoints = { "127.0.0.1:18081" } }
cluster "v2" { endpoints = { "127.0.0.1:18082" } }
listener "ingress" {
  listen = "127.0.0.1:18080", protocol = "http",
  plugins = {
    headers { response_set = { ["x-mesh-node"] = "demo" } },
    router {
      { match = { prefix = "/api" },
        split = { { cluster = "v1", weight = 90 }, { cluster = "v2", weight = 10 } } },
      { match = { exact = "/health" }, direct_response = { status = 200, body = "ok\n" } },
    },
  },
}
