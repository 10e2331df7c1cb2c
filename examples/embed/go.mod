module example.com/embed

go 1.24

require github.com/luahost/luahost v0.0.0

require (
	github.com/yuin/gopher-lua v1.1.2 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	layeh.com/gopher-luar v1.0.11 // indirect
)

replace github.com/luahost/luahost => ../..
