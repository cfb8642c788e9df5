-- Gossip demo, node 1 of 3 (examples/demo.sh): the seed. Its cluster "catalog" follows the
-- service "catalog" wherever a node advertises it; nothing here says where that is.
node { name = "gossip-1", workers = 1 }
admin { listen = "127.0.0.1:15021" }
gossip { bind = "127.0.0.1:17946", profile = "fast", tags = { role = "edge" } }
cluster "catalog" { discover = "catalog" }
listener "in" {
  listen = "127.0.0.1:18101", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "catalog" } } },
}
