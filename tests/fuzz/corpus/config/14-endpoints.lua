local eps = {}
for i = 1, 50 do eps[#eps + 1] = { address = "[2001:db8::" .. i .. "]:80", weight = i, labels = { zone = "z" .. (i % 3), v = "v" .. i } } end
cluster "big" { endpoints = eps, lb = "random" }
listener "l" { listen = "[::1]:8443", plugins = { fz_route { cluster = "big", routes = { { prefix = "/", cluster = "big" } } } } }
