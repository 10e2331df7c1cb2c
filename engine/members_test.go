package engine_test

import (
	"encoding/json"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/luahost/luahost/luaapi"
)

// describeAPI is a module whose web resource answers with every member of
// the api table its constructor received, one level into nested tables:
// {name = "function" | "string" | ... | {member = type, ...}}.
const describeAPI = `
local M = {}
local function describe(t, depth)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "table" and depth > 0 then
      out[k] = describe(v, depth - 1)
    else
      out[k] = type(v)
    end
  end
  return out
end
function M.new(config, api)
  local seen = describe(api, 1)
  api.register_web_resource("/_synapse/client/describe", function() return { json = seen } end)
end
return M
`

// luaapi.APIMembers is what the stubs, the docs and "did you mean" know
// about module_api; it must be exactly what a module receives.
func TestAPIMembersMatchTheRealTable(t *testing.T) {
	e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: d.lua\n", map[string]string{"d.lua": describeAPI})
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_synapse/client/describe", nil))
	var real map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &real); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	listed := map[string]*luaapi.Member{}
	for _, m := range luaapi.APIMembers() {
		listed[m.Name] = m
	}
	var missing, extra []string
	for name, v := range real {
		m := listed[name]
		if m == nil {
			missing = append(missing, name)
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			if m.Kind != luaapi.MemberTable {
				t.Errorf("api.%s is a table; luaapi lists it as kind %d", name, m.Kind)
				continue
			}
			sub := map[string]bool{}
			for _, s := range m.Members {
				sub[s.Name] = true
				if _, ok := v[s.Name]; !ok {
					extra = append(extra, name+"."+s.Name)
				}
			}
			for k := range v {
				if !sub[k] {
					missing = append(missing, name+"."+k)
				}
			}
		case string:
			if (v == "function") != (m.Kind == luaapi.MemberFunction) {
				t.Errorf("api.%s is a %s; luaapi lists it as kind %d", name, v, m.Kind)
			}
		}
	}
	for name, m := range listed {
		if _, ok := real[name]; !ok && !m.Nilable {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("api members a module receives that luaapi/members.go does not list (add them, then go generate ./...): %s", strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		t.Errorf("luaapi/members.go lists members a module does not receive: %s", strings.Join(extra, ", "))
	}
}
