node "x"
cluster { endpoints = {} }
local c = cluster "a"
cluster "a b" { endpoints = { "127.0.0.1:1" } }
cluster "e" { }
cluster "f" { endpoints = {} }
listener "l" { protocol = "udp", plugins = { fz_hdr { set = { a = {} } } } }
error({})
