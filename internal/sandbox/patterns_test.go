package sandbox

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// corpusArgs converts the arguments of a line of lpattern's corpus
// (Go-quoted strings, numbers, true/false/nil, {k=v ...}, func:NAME) into
// Lua source, and returns the rest of the line.
func corpusArgs(s string) (args []string, rest string, err error) {
	var value func() (string, error)
	value = func() (string, error) {
		s = strings.TrimLeft(s, " ")
		switch {
		case s == "":
			return "", fmt.Errorf("missing value")
		case s[0] == '"':
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return "", err
			}
			u, _ := strconv.Unquote(q)
			s = s[len(q):]
			var b strings.Builder
			b.WriteByte('"')
			for i := 0; i < len(u); i++ {
				fmt.Fprintf(&b, `\%03d`, u[i])
			}
			b.WriteByte('"')
			return b.String(), nil
		case s[0] == '{':
			s = strings.TrimLeft(s[1:], " ")
			var parts []string
			for !strings.HasPrefix(s, "}") {
				k, err := value()
				if err != nil {
					return "", err
				}
				s = strings.TrimLeft(s, " ")
				if !strings.HasPrefix(s, "=") {
					return "", fmt.Errorf("table entry without '='")
				}
				s = s[1:]
				v, err := value()
				if err != nil {
					return "", err
				}
				parts = append(parts, "["+k+"]="+v)
				s = strings.TrimLeft(s, " ")
			}
			s = s[1:]
			return "{" + strings.Join(parts, ",") + "}", nil
		case strings.HasPrefix(s, "func:"):
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			name := s[5:end]
			s = s[end:]
			return fmt.Sprintf("F[%q]", name), nil
		default:
			end := strings.IndexAny(s, " =}")
			if end < 0 {
				end = len(s)
			}
			tok := s[:end]
			s = s[end:]
			if tok == "table" { // an empty table value
				return "{}", nil
			}
			return tok, nil
		}
	}
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" || strings.HasPrefix(s, "=>") {
			return args, s, nil
		}
		v, err := value()
		if err != nil {
			return nil, "", err
		}
		args = append(args, v)
	}
}

// The sandbox's string.find, match, gmatch and gsub answer every call of
// internal/lpattern's corpus as reference lua5.1 did, run through the same
// runner script. The one deliberate difference: an error raised by a
// builtin that pcall called directly names the line of the pcall (Lua 5.1
// gives no position there).
func TestPatternsMatchLua51Corpus(t *testing.T) {
	runner, err := os.ReadFile("../lpattern/testdata/runner.lua")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../lpattern/testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases, wants, lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn, rest, _ := strings.Cut(line, " ")
		args, rest, err := corpusArgs(rest)
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		want, ok := strings.CutPrefix(rest, "=> ")
		if !ok {
			continue
		}
		cases = append(cases, fmt.Sprintf("{%q, {%s}, %d}", fn, strings.Join(args, ", "), len(args)))
		wants = append(wants, want)
		lines = append(lines, fmt.Sprintf("line %d: %s", n, line))
	}
	if len(cases) < 300 {
		t.Fatalf("only %d cases read", len(cases))
	}
	L := NewState()
	defer L.Close()
	var out strings.Builder
	io := L.NewTable()
	io.RawSetString("write", L.NewFunction(func(L *lua.LState) int {
		for i := 1; i <= L.GetTop(); i++ {
			out.WriteString(L.ToString(i))
		}
		return 0
	}))
	L.SetGlobal("io", io)
	src := string(runner) + "\nRUN{\n" + strings.Join(cases, ",\n") + "\n}\n"
	proto, err := Compile([]byte(src), "runner.lua")
	if err != nil {
		t.Fatal(err)
	}
	L.Push(L.NewFunctionFromProto(proto))
	if err := L.PCall(0, 0, nil); err != nil {
		t.Fatal(err)
	}
	position := regexp.MustCompile(`^error "runner\.lua:\d+: `)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != len(cases) {
		t.Fatalf("%d results for %d cases", len(got), len(cases))
	}
	for i, g := range got {
		_, res, _ := strings.Cut(g, "\t")
		res = position.ReplaceAllString(res, `error "`)
		if res != wants[i] {
			t.Errorf("%s\n got %s", lines[i], res)
		}
	}
}

// A backtracking pattern that ran for minutes (no reply, the module
// stuck) ends at the call's deadline.
func TestHostilePatternsEndAtTheDeadline(t *testing.T) {
	for _, src := range []string{
		`string.find(("a"):rep(2e4), ("a-"):rep(20) .. "b")`,
		`string.match(("a"):rep(2e4), ("a*"):rep(20) .. "b")`,
		`for w in string.gmatch(("a"):rep(2e4), ("a-"):rep(20) .. "b") do end`,
		`string.gsub(("a"):rep(2e4), ("a-"):rep(20) .. "b", "")`,
	} {
		L := NewState()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		L.SetContext(ctx)
		start := time.Now()
		err := L.DoString(src)
		took := time.Since(start)
		cancel()
		L.Close()
		if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
			t.Errorf("%s: want the deadline to stop it, got %v", src, err)
			continue
		}
		t.Logf("%s: ended %s after the 200ms deadline", src, (took - 200*time.Millisecond).Round(time.Millisecond))
	}
}
