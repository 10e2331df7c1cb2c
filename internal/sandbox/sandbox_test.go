package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

// string.gsub keeps Lua 5.1's behaviour; each line is checked against the
// answer a reference Lua 5.1 gives.
func TestGsubMatchesLua51(t *testing.T) {
	cases := []struct{ expr, want string }{
		{`string.gsub("hello world", "o", "0")`, "hell0 w0rld 2"},
		{`string.gsub("hello world", "(o)", "[%1]")`, "hell[o] w[o]rld 2"},
		{`string.gsub("hello", "", "-")`, "-h-e-l-l-o- 6"},
		{`string.gsub("abc", "%w", "%0%0")`, "aabbcc 3"},
		{`string.gsub("abc", "%w", "%%")`, "%%% 3"},
		{`string.gsub("hello world", "%w+", "%1!")`, "hello! world! 2"},
		{`string.gsub("$name is $age", "%$(%w+)", {name = "bob", age = 42})`, "bob is 42 2"},
		{`string.gsub("$name $unknown", "%$(%w+)", {name = "bob"})`, "bob $unknown 2"},
		{`string.gsub("a,b,c", "[^,]+", function(s) return s:upper() end)`, "A,B,C 3"},
		{`string.gsub("a=1, b=2", "(%w+)=(%w+)", "%2=%1")`, "1=a, 2=b 2"},
		{`string.gsub("abc", "b", function() return nil end)`, "abc 1"},
		{`string.gsub("hello", "l", "L", 1)`, "heLlo 1"},
		{`string.gsub("abc", "()b()", "%1-%2")`, "a2-3c 1"},
		{`string.gsub(string.rep("ab", 600), "ab", "x")`, strings.Repeat("x", 600) + " 600"},
		{`string.gsub(string.rep("ab", 600), "ab", "x", 300)`, strings.Repeat("x", 300) + strings.Repeat("ab", 300) + " 300"},
		{`string.gsub("aaa", "^a", "b")`, "baa 1"},
		{`string.gsub(string.rep("a", 600), "", "-")`, "-" + strings.Repeat("a-", 600) + " 601"},
	}
	L := NewState()
	defer L.Close()
	for _, tc := range cases {
		if err := L.DoString(`local s, n = ` + tc.expr + `; result = s .. " " .. n`); err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got := L.GetGlobal("result").String(); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// 100k matches in a 1 MB string: linear, and a looping replacement
// function is stopped by the call's deadline.
func TestGsubOnHostileInput(t *testing.T) {
	L := NewState()
	defer L.Close()
	if err := L.DoString(`local s = string.rep("ab ", 100000) .. string.rep("x", 700000)
		local out, n = string.gsub(s, "ab", "c")
		assert(n == 100000 and #out == #s - 100000, "linear gsub")`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	L.SetContext(ctx)
	err := L.DoString(`local s = string.rep("a", 1000000)
		string.gsub(s, "a", function(c) for i = 1, 100 do end return "b" end)`)
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("want the deadline to stop gsub, got %v", err)
	}
	L.RemoveContext()
}

func TestGsubResultIsCapped(t *testing.T) {
	L := NewState()
	defer L.Close()
	err := L.DoString(`string.gsub(string.rep("a", 200000), "a", string.rep("b", 400))`)
	if err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Errorf("a 100 MB result should be refused, got %v", err)
	}
}
