-- Gossip demo, node 2 of 3: joins through node 1; routes to the "catalog" service too.
node { name = "gossip-2", workers = 1 }
admin { listen = "127.0.0.1:15022" }
gossip { bind = "127.0.0.1:17947", join = { "127.0.0.1:17946" }, profile = "fast",
         tags = { role = "edge" } }
cluster "catalog" { discover = "catalog" }
listener "in" {
  listen = "127.0.0.1:18102", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "catalog" } } },
}
