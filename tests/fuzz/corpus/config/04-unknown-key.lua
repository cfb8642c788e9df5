node { workres = 2, [1] = "x", [true] = false }
cluster "a" { endpoints = { "127.0.0.1:1" }, limits = { max_conections = 1 } }
listener "in" { listen = ":80", plugins = { fz_hdr { alow = 1 }, fz_route { cluster = "a", routes = { { prefx = "/" } } } } }
