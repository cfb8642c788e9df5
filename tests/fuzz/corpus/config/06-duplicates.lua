node { }
node { }
admin { listen = ":1" }
admin { listen = ":2" }
cluster "a" { endpoints = { "127.0.0.1:1" } }
cluster "a" { endpoints = { "127.0.0.1:2" } }
listener "l" { listen = ":1", plugins = { fz_route { cluster = "a" } } }
listener "l" { listen = ":2", plugins = { fz_route { cluster = "a" } } }
listener "m" { listen = "0.0.0.0:1", plugins = { fz_route { cluster = "zz" } } }
