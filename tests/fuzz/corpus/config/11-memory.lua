local t, s = {}, "0123456789abcdef"
for i = 1, 100 do s = s .. s; t[i] = s end
