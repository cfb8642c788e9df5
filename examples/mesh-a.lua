-- Node A of the mTLS demo (examples/demo.sh): plain HTTP in, mutual TLS out to node B, which
-- must prove it is spiffe://mesh.local/ns/demo/sa/node-b. Every request is traced (W3C trace
-- context on to B; spans to the demo's OTLP collector on 127.0.0.1:14318).
node { name = "node-a", workers = 1 }
identity { ca = "pki/ca/ca.pem", cert = "pki/node-a.pem", key = "pki/node-a.key" }
admin { listen = "127.0.0.1:15010" }
cluster "node-b" { endpoints = { "127.0.0.1:18443" }, tls = "mutual",
                   expect = { "spiffe://mesh.local/ns/demo/sa/node-b" } }
listener "ingress" {
  listen = "127.0.0.1:18090", protocol = "http",
  plugins = {
    tracing { sampling = 100, otlp = "127.0.0.1:14318", service_name = "node-a", flush = "100ms" },
    router { { match = { prefix = "/" }, cluster = "node-b" } },
  },
}
