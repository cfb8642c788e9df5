#!/usr/bin/env nodus
local names = { "a", "b", "c" }
local function mk(port) return { endpoints = { string.format("127.0.0.1:%d", port) } } end
for i, n in ipairs(names) do cluster(n)(mk(9000 + i)) end
cluster("d", { endpoints = { ("10.0.0.%d:80"):format(math.max(1, 4)) } })
local r = fz_route { cluster = names[#names] }
assert(tostring(r):find("fz_route"))
print("hello", 1, nil, r, utf8.char(233), #table.concat({ 1, 2 }))
listener "l" { listen = "127.0.0.1:8080", plugins = { r } }
listener "m" { listen = "127.0.0.1:8081", plugins = { fz_hdr {}, r } }
