-- Node A of the mTLS demo (examples/demo.sh): plain HTTP in, mutual TLS out to node B, which
-- must prove it is spiffe://mesh.local/ns/demo/sa/node-b.
node { name = "node-a", workers = 1 }
identity { ca = "pki/ca/ca.pem", cert = "pki/node-a.pem", key = "pki/node-a.key" }
admin { listen = "127.0.0.1:15010" }
cluster "node-b" { endpoints = { "127.0.0.1:18443" }, tls = "mutual",
                   expect = { "spiffe://mesh.local/ns/demo/sa/node-b" } }
listener "ingress" {
  listen = "127.0.0.1:18090", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "node-b" } } },
}
