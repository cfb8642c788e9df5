-- Node B of the mTLS demo (examples/demo.sh): a strict mTLS listener in front of service v1.
-- Only nodes of namespace "demo" of the mesh CA may connect; each verified peer is logged. Its
-- spans join the trace node A started (to the same collector).
-- pki/ is made with `nodus ca` (see examples/demo.sh or docs/mtls.md).
node { name = "node-b", workers = 1 }
identity { ca = "pki/ca/ca.pem", cert = "pki/node-b.pem", key = "pki/node-b.key" }
admin { listen = "127.0.0.1:15011" }
cluster "v1" { endpoints = { "127.0.0.1:18081" } }
listener "mesh" {
  listen = "127.0.0.1:18443", protocol = "http",
  plugins = {
    mtls { mode = "strict", allow = { "spiffe://mesh.local/ns/demo/*" }, log_peers = true },
    tracing { sampling = 100, otlp = "127.0.0.1:14318", service_name = "node-b", flush = "100ms" },
    router { { match = { prefix = "/" }, cluster = "v1" } },
  },
}
