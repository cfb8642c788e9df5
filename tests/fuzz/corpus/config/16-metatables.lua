local proxy = setmetatable({}, { __index = function(t, k) return "127.0.0.1:" .. (9000 + #k) end })
local ep = proxy.abc
local t = setmetatable({ endpoints = { ep } }, { __index = { lb = "random" } })
cluster "m" (t)
local co = coroutine
