cluster "c" { endpoints = { "127.0.0.1:1" } }
listener "l" { listen = ":8080", plugins = { fz_route { cluster = "c" } } }
