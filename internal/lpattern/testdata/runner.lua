-- RUN(cases), called by the Go test after this file, runs the cases through
-- Lua's own string library and prints one line per case: its number, a tab,
-- and its result in the format of testdata/corpus.txt.

local function q(s)
  return '"' .. (s:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' then return '\\"'
    elseif c == '\\' then return '\\\\'
    elseif c == '\n' then return '\\n'
    elseif c == '\t' then return '\\t'
    elseif c == '\r' then return '\\r'
    end
    return string.format('\\x%02x', c:byte())
  end)) .. '"'
end

local function fmt(v)
  if type(v) == "string" then return q(v) end
  return tostring(v)
end

local function pack(...) return { n = select('#', ...), ... } end

local function values(r, from)
  local out = {}
  for i = from, r.n do out[#out + 1] = fmt(r[i]) end
  return table.concat(out, " ")
end

-- The replacement functions a gsub case can name (func:NAME).
F = {
  join = function(...)
    local t = {}
    for i = 1, select('#', ...) do t[i] = tostring((select(i, ...))) end
    return table.concat(t, ",")
  end,
  ["nil"] = function() return nil end,
  ["false"] = function() return false end,
  table = function() return {} end,
  num = function() return 42 end,
}

function RUN(cases)
for i, c in ipairs(cases) do
  local fn, args, n = c[1], c[2], c[3]
  local line
  if fn == "gmatch" then
    local ok, res = pcall(function()
      local groups = {}
      local iter = string.gmatch(args[1], args[2])
      for _ = 1, 1000 do
        -- Called through pcall so the message carries no "stdin:LINE:"
        -- (luaL_error names the caller's line when the caller is Lua code).
        local r = pack(pcall(iter))
        if not r[1] then error(r[2], 0) end
        if r[2] == nil then break end
        groups[#groups + 1] = "[" .. values(r, 2) .. "]"
      end
      return table.concat(groups, " ")
    end)
    if ok then line = res else line = "error " .. q(res) end
  else
    local r = pack(pcall(string[fn], unpack(args, 1, n)))
    if r[1] then line = values(r, 2) else line = "error " .. q(r[2]) end
  end
  io.write(i, "\t", line, "\n")
end
end
