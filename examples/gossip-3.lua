-- Gossip demo, node 3 of 3: joins through node 1 and advertises the service "catalog", served
-- by the demo's v2 nginx on 127.0.0.1:18082. Nodes 1 and 2 learn it by gossip.
node { name = "gossip-3", workers = 1 }
admin { listen = "127.0.0.1:15023" }
gossip { bind = "127.0.0.1:17948", join = { "127.0.0.1:17946" }, profile = "fast",
         tags = { role = "backend" } }
service "catalog" { port = 18082, labels = { version = "v2" } }
