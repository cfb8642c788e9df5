for i = 1, 100 do cluster("c" .. i) { endpoints = { "bad" } } end
