package lint_test

import (
	"reflect"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/lint"
)

func TestTableFields(t *testing.T) {
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(`
		t = { a = 1, sub = { x = 1, deep = { y = 1 } }, meta = setmetatable({ k = 1 }, { __index = string }), [1] = "not a name" }
		t.self = t
		t.again = t.sub`); err != nil {
		t.Fatal(err)
	}
	tb := L.GetGlobal("t").(*lua.LTable)
	cases := []struct {
		depth int
		want  lint.Fields
	}{
		{1, lint.Fields{"a": nil, "sub": nil, "meta": nil, "self": nil, "again": nil}},
		{2, lint.Fields{"a": nil, "sub": {"x": nil, "deep": nil}, "meta": nil, "self": nil, "again": {"x": nil, "deep": nil}}},
		{3, lint.Fields{"a": nil, "sub": {"x": nil, "deep": {"y": nil}}, "meta": nil, "self": nil, "again": {"x": nil, "deep": {"y": nil}}}},
	}
	for _, tc := range cases {
		if got := lint.TableFields(tb, tc.depth); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("depth %d:\n got %v\nwant %v", tc.depth, got, tc.want)
		}
	}
}
