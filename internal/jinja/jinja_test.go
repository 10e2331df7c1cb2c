package jinja

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// renderCase is one template rendered in a folder of its own. Every case
// with want (or wantErr) is also rendered by the real Jinja2 when it is
// installed (TestAgainstJinja2), unless noOracle says why the two differ.
type renderCase struct {
	name     string
	file     string            // the template's name; default t.txt
	src      string            // its text
	files    map[string]string // other files of the folder
	vars     map[string]any
	want     string
	wantErr  string // the error contains this ("" = no error)
	noOracle string // why real Jinja2 gives another result, if it does
}

var caseOptions = Options{
	Globals:       map[string]any{"server_name": "example.org"},
	PublicBaseURL: "https://matrix.example.org/",
	Location:      time.UTC,
}

func (c renderCase) fileName() string {
	if c.file == "" {
		return "t.txt"
	}
	return c.file
}

func (c renderCase) fs() fstest.MapFS {
	fsys := fstest.MapFS{c.fileName(): {Data: []byte(c.src)}}
	for name, src := range c.files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	return fsys
}

func (c renderCase) render(opts Options) (string, error) {
	ts, err := LoadWithOptions(c.fs(), []string{c.fileName()}, opts)
	if err != nil {
		return "", err
	}
	return ts[0].Render(c.vars)
}

var renderCases = []renderCase{
	// Output and literals.
	{name: "text", src: "Hello, world", want: "Hello, world"},
	{name: "variable", src: "Hi {{ name }}!", vars: map[string]any{"name": "Zoë"}, want: "Hi Zoë!"},
	{name: "undefined prints nothing", src: "[{{ missing }}]", want: "[]"},
	{name: "Lua numbers", src: "{{ n }} {{ f }} {{ ts }}", vars: map[string]any{"n": 5.0, "f": 2.5, "ts": 1.7e12}, want: "5 2.5 1700000000000"},
	{name: "arithmetic", src: "{{ 1 + 2 * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 10 - 2.5 }}",
		want: "7 3.5 3 -4 1 2 1024 2.5 7.5"},
	{name: "precedence", src: "{{ 2 + 3 * 4 ** 2 }} {{ -2 ** 2 }} {{ (1 + 2) * 3 }} {{ 'n=' ~ 2 * 3 }} {{ -3|abs }}", want: "50 4 9 n=6 3"},
	{name: "None True False", src: "{{ none }} {{ true }} {{ False }} {{ None }}", want: "None True False None"},
	{name: "list and dict literals", src: "{{ [1, 'a', none, 2.5] }} {{ {'k': 'v', 'n': [true]} }} {{ (1, 2)|list }} {{ [] }}",
		want: "[1, 'a', None, 2.5] {'k': 'v', 'n': [True]} [1, 2] []"},
	{name: "string literals", src: `{{ "a\"b" }} {{ 'it\'s' }} {{ "x" 'y' }} {{ "tab\there" }}`, want: "a\"b it's xy tab\there"},
	{name: "float formatting", src: "{{ 1e20 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 4 / 2 }} {{ 1.5e-7 }} {{ 123456789.125 }}",
		want: "1e+20 0.30000000000000004 2.5 2.0 1.5e-07 123456789.125"},
	{name: "list of strings repr", src: `{{ ["it's", 'say "hi"', "a\nb"] }}`, want: `["it's", 'say "hi"', 'a\nb']`},

	// Attribute and item access.
	{name: "attribute and item", src: "{{ user.name }} {{ user['name'] }} {{ items[0] }} {{ items[-1] }} {{ items.1 }}",
		vars: map[string]any{"user": map[string]any{"name": "bob"}, "items": []any{"x", "y"}}, want: "bob bob x y y"},
	{name: "missing key prints nothing", src: "[{{ user.missing }}][{{ user['x'] }}][{{ items[5] }}]",
		vars: map[string]any{"user": map[string]any{}, "items": []any{}}, want: "[][][]"},
	{name: "slices", src: "{{ 'hello'[1:3] }} {{ items[::-1] }} {{ items[1:] }} {{ items[:-1] }} {{ 'abcdef'[::2] }} {{ items[5:] }}",
		vars: map[string]any{"items": []any{1, 2, 3}}, want: "el [3, 2, 1] [2, 3] [1, 2] ace []"},
	{name: "dict methods", src: "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }}",
		vars: map[string]any{"d": map[string]any{"a": 1, "b": 2}}, want: "a=1;b=2; 1 dflt ['a', 'b'] [1, 2]"},
	{name: "string methods", src: "{{ s.upper() }} {{ s.startswith('He') }} {{ s.split(',') }} {{ '-'.join(['a', 'b']) }} [{{ ' x '.strip() }}] {{ s.replace('o', '0') }} {{ 'a b  c'.split() }}",
		vars: map[string]any{"s": "Hello,World"}, want: "HELLO,WORLD True ['Hello', 'World'] a-b [x] Hell0,W0rld ['a', 'b', 'c']"},

	// Operators.
	{name: "comparisons", src: "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1] == [1] }}",
		want: "True False True True True True False True True"},
	{name: "in and not in", src: "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }} {{ not 'k' in d }} {{ 'x' in missing }}",
		vars: map[string]any{"d": map[string]any{"k": 1}}, want: "True True True True False False"},
	{name: "and or not return operands", src: "{{ true and 'x' }} {{ false or 'y' }} {{ name or 'friend' }} {{ not none }} {{ 0 and 1 }} {{ '' or 0 }}",
		want: "x y friend True 0 0"},
	{name: "conditional expression", src: "{{ 'yes' if n > 1 else 'no' }} [{{ 'a' if false }}] {{ 'a' if n == 1 else 'b' if n == 2 else 'c' }}",
		vars: map[string]any{"n": 2}, want: "yes [] b"},
	{name: "concatenation", src: "{{ 1 ~ 2 ~ 'x' }} {{ none ~ missing ~ true }}", want: "12x NoneTrue"},
	{name: "string percent formatting", src: `{{ "%s has %d new messages" % (name, n) }} {{ "%(a)s-%(b)s" % {'a': 1, 'b': 2} }} {{ "%05.1f|%-4s|%x|%3d|%%" % (3.14159, 'ab', 255, 7) }} {{ "%s" % name }} {{ "%.2e %g %r" % (12345.678, 0.5, 'q') }}`,
		vars: map[string]any{"name": "Ann", "n": 3}, want: "Ann has 3 new messages 1-2 003.1|ab  |ff|  7|% Ann 1.23e+04 0.5 'q'"},
	{name: "string and list repetition", src: "{{ 'ab' * 3 }} {{ [1] * 2 }} [{{ 'x' * 0 }}]", want: "ababab [1, 1] []"},
	{name: "list concatenation", src: "{{ [1] + [2] }} {{ 'a' + 'b' }}", want: "[1, 2] ab"},

	// Filters.
	{name: "escape in text", src: `{{ '<a href="x">&\'' | e }} {{ '<b>'|escape }}`, want: "&lt;a href=&#34;x&#34;&gt;&amp;&#39; &lt;b&gt;"},
	{name: "safe in html", file: "t.html", src: "{{ s|safe }} {{ s }} {{ s|e }} {{ s|e|e }}", vars: map[string]any{"s": "<b>"},
		want: "<b> &lt;b&gt; &lt;b&gt; &lt;b&gt;"},
	{name: "case filters", src: "{{ 'hello wORLD'|upper }} {{ 'ABC'|lower }} {{ \"hello big-world (x) it's\"|title }} {{ 'hELLO world'|capitalize }}",
		want: "HELLO WORLD abc Hello Big-World (X) It's Hello world"},
	{name: "default", src: "{{ missing|default('x') }} {{ missing|d('y') }} [{{ ''|default('z') }}] {{ ''|default('z', true) }} {{ none|default('n') }} [{{ missing|default }}] {{ 0|d(5, boolean=true) }}",
		want: "x y [] z None [] 5"},
	{name: "length and count", src: "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }} {{ missing|length }}", want: "5 2 1 0"},
	{name: "join", src: "{{ [1, 2, 3]|join(', ') }} {{ users|join(', ', attribute='name') }} {{ 'abc'|join('-') }} {{ [1, 2]|join }}",
		vars: map[string]any{"users": []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}}}, want: "1, 2, 3 a, b a-b-c 12"},
	{name: "join escapes around Markup", file: "t.html", src: "{{ ['<a>', '<b>'|safe]|join('&') }} {{ ['<a>', 'b']|join('&') }}",
		want: "&lt;a&gt;&amp;<b> &lt;a&gt;&amp;b"},
	{name: "trim", src: "[{{ '  x \n '|trim }}] [{{ 'xxhixx'|trim('x') }}]", want: "[x] [hi]"},
	{name: "replace", src: "{{ 'a-b-c'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'ab'|replace('', '.') }}", want: "a+b+c bba .a.b."},
	{name: "replace newlines with markup", file: "t.html", src: `{{ s|replace("\n", "<br>"|safe) }}`, vars: map[string]any{"s": "a<\nb"},
		want: "a&lt;<br>b"},
	{name: "format", src: "{{ '%s-%s'|format('a', 1) }} {{ '%(x)s'|format(x='y') }} {{ '%.1f%%'|format(99.44) }}", want: "a-1 y 99.4%"},
	{name: "format with Markup escapes its arguments", file: "t.html", src: "{{ '<p>%s</p>'|safe|format('<x>') }}", want: "<p>&lt;x&gt;</p>"},
	{name: "first and last", src: "{{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }} {{ 'abc'|first }} [{{ []|first }}]", want: "1 3 a []"},
	{name: "int and float", src: "{{ '42'|int + 1 }} {{ '3.9'|int }} {{ 'x'|int(7) }} {{ '2.5'|float }} {{ 3|float }} {{ 3.7|int }} {{ 'ff'|int(base=16) }}",
		want: "43 3 7 2.5 3.0 3 255"},
	{name: "string and list", src: "{{ 1|string ~ 'x' }} {{ 'ab'|list }} {{ range(3)|list }}", want: "1x ['a', 'b'] [0, 1, 2]"},
	{name: "abs and round", src: "{{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }}",
		want: "3 2.57 2.0 3.0 2.0 7"},
	{name: "sort and reverse", src: "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ [1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ users|sort(attribute='age')|join(',', attribute='name') }}",
		vars: map[string]any{"users": []any{map[string]any{"name": "a", "age": 30}, map[string]any{"name": "b", "age": 20}}},
		want: "[1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] [2, 1] cba b,a"},
	{name: "urlencode", src: "{{ 'a b/c&d=é'|urlencode }} {{ {'n': 1, 'q': 'x y&'}|urlencode }}", want: "a%20b/c%26d%3D%C3%A9 n=1&q=x+y%26"},
	{name: "truncate", src: "{{ s|truncate(15) }}|{{ s|truncate(15, true) }}|{{ 'short'|truncate(15) }}|{{ s|truncate(15, end='…') }}",
		vars: map[string]any{"s": "The quick brown fox jumps"}, want: "The quick...|The quick br...|short|The quick…"},
	{name: "wordcount", src: "{{ 'Hello, big world_2!'|wordcount }}", want: "3"},
	{name: "items", src: "{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}", vars: map[string]any{"d": map[string]any{"a": 1, "b": 2}}, want: "a1b2"},
	{name: "format_ts", src: "{{ ts|format_ts('%d-%m-%Y %H:%M:%S') }} {{ ts|format_ts('%a %b %e %j %y %I%p') }}",
		vars: map[string]any{"ts": 1700000000000.0}, want: "14-11-2023 22:13:20 Tue Nov 14 318 23 10PM"},
	{name: "mxc_to_http", src: "{{ 'mxc://example.org/abc#frag'|mxc_to_http(32, 32) }} {{ 'mxc://e.org/x'|mxc_to_http(64, 48, 'scale') }} [{{ 'https://x'|mxc_to_http(1, 1) }}]",
		want: "https://matrix.example.org/_matrix/media/v1/thumbnail/example.org/abc?width=32&height=32&method=crop#frag https://matrix.example.org/_matrix/media/v1/thumbnail/e.org/x?width=64&height=48&method=scale []"},
	{name: "localpart_from_email", src: "{{ 'alice@example.org'|localpart_from_email }} {{ 'a@b@c'|localpart_from_email }}", want: "alice a@b"},
	{name: "filter chains", src: "{{ name|lower|title ~ '!' }} {{ items|join(',')|upper }}", vars: map[string]any{"name": "jOHN", "items": []any{"a", "b"}}, want: "John! A,B"},

	// Tests.
	{name: "tests", src: "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'a' is string }} {{ x is number }} {{ d is mapping }} {{ x is not string }} {{ [1] is sequence }} {{ 1.5 is float }} {{ 1 is integer }}",
		vars: map[string]any{"x": 1, "d": map[string]any{}}, want: "True False True True True True True False True True True True True True True"},
	{name: "comparison tests", src: "{{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 'a' is in 'abc' }} {{ 'ABC' is upper }} {{ 'abc' is lower }} {{ 1 is ne 1 }} {{ 2 is le 2 }}",
		want: "True True True True True False True"},

	// if.
	{name: "if elif else 1", src: "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}", vars: map[string]any{"n": 1}, want: "small"},
	{name: "if elif else 2", src: "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}", vars: map[string]any{"n": 3}, want: "mid"},
	{name: "if elif else 3", src: "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}", vars: map[string]any{"n": 7}, want: "big"},
	{name: "nested if", src: "{% if a %}{% if b %}ab{% else %}a{% endif %}{% endif %}", vars: map[string]any{"a": true, "b": false}, want: "a"},
	{name: "if on empty values", src: "{% if [] %}x{% endif %}{% if {} %}x{% endif %}{% if '' %}x{% endif %}{% if 0 %}x{% endif %}{% if missing %}x{% endif %}{% if ' ' %}y{% endif %}", want: "y"},

	// for.
	{name: "for with loop.index and loop.last", src: "{% for x in xs %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}",
		vars: map[string]any{"xs": []any{"a", "b", "c"}}, want: "1/3:a, 2/3:b, 3/3:c"},
	{name: "loop variables", src: "{% for x in xs %}{{ loop.first }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.cycle('o', 'e') }}{{ loop.previtem }}{{ loop.nextitem }}|{% endfor %}",
		vars: map[string]any{"xs": []any{"a", "b"}}, want: "True021ob|False110ea|"},
	{name: "for else", src: "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", want: "empty"},
	{name: "for over undefined", src: "{% for x in missing %}x{% else %}none{% endfor %}", want: "none"},
	{name: "for with a filter", src: "{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }} {% endfor %}", want: "15 35 55 75 95 "},
	{name: "for unpacking", src: "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}", want: "3 7 "},
	{name: "for over a dict", src: "{% for k in d %}{{ k }}{% endfor %}", vars: map[string]any{"d": map[string]any{"b": 1, "a": 2}}, want: "ab"},
	{name: "nested loops", src: "{% for r in rows %}{% for c in r %}{{ loop.index }}{{ c }}{% endfor %};{% endfor %}",
		vars: map[string]any{"rows": []any{[]any{"a", "b"}, []any{"c"}}}, want: "1a2b;1c;"},
	{name: "for over a string", src: "{% for c in 'ab' %}[{{ c }}]{% endfor %}", want: "[a][b]"},
	{name: "range", src: "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }}", want: "[0, 1, 2] [1, 4, 7] [5, 3, 1] []"},
	{name: "set inside a loop stays inside", src: "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %} {{ x }}", want: "23 1"},

	// set.
	{name: "set", src: "{% set a = 1 %}{% set b, c = [2, 3] %}{{ a + b + c }}", want: "6"},
	{name: "set tuple", src: "{% set a, b = 1, 2 %}{{ b }}{{ a }}", want: "21"},
	{name: "block set", file: "t.html", src: "{% set greeting %}Hi <b>{{ name }}</b>{% endset %}{{ greeting }}", vars: map[string]any{"name": "<x>"},
		want: "Hi <b>&lt;x&gt;</b>"},
	{name: "set in if is visible after it", src: "{% if true %}{% set y = 5 %}{% endif %}{{ y }}", want: "5"},
	{name: "set shadows a variable", src: "{% set name = name|upper %}{{ name }}", vars: map[string]any{"name": "bo"}, want: "BO"},

	// include.
	{name: "include", src: "<{% include 'part.txt' %}>", files: map[string]string{"part.txt": "[{{ name }}]"}, vars: map[string]any{"name": "bob"}, want: "<[bob]>"},
	{name: "include without context", src: "{% include 'part.txt' without context %}", files: map[string]string{"part.txt": "[{{ name }}{{ server_name }}]"},
		vars: map[string]any{"name": "bob"}, want: "[example.org]"},
	{name: "include with context", src: "{% include 'part.txt' with context %}", files: map[string]string{"part.txt": "[{{ name }}]"}, vars: map[string]any{"name": "bob"}, want: "[bob]"},
	{name: "include ignore missing", src: "a{% include 'nope.txt' ignore missing %}b", want: "ab"},
	{name: "include sees loop variables", src: "{% for name in ['x', 'y'] %}{% include 'part.txt' %}{% endfor %}", files: map[string]string{"part.txt": "[{{ name }}]"}, want: "[x][y]"},
	{name: "include from a subfolder", src: "{% include 'fragments/f.txt' %}", files: map[string]string{"fragments/f.txt": "frag"}, want: "frag"},
	{name: "include the first that exists", src: "{% include ['nope.txt', 'part.txt'] %}", files: map[string]string{"part.txt": "P"}, want: "P"},
	{name: "include by expression", src: "{% include 'mail-%s.txt' % app ignore missing %}{% include 'mail-%s.txt' % other ignore missing %}",
		files: map[string]string{"mail-x.txt": "X!"}, vars: map[string]any{"app": "x", "other": "y"}, want: "X!"},
	{name: "included html is escaped inside text", src: "{{ s }}|{% include 'p.html' %}", files: map[string]string{"p.html": "{{ s }}"}, vars: map[string]any{"s": "<"}, want: "<|&lt;"},
	{name: "included text is not escaped inside html", file: "t.html", src: "{{ s }}|{% include 'p.txt' %}", files: map[string]string{"p.txt": "{{ s }}"}, vars: map[string]any{"s": "<"}, want: "&lt;|<"},
	{name: "a set in an include stays there", src: "{% include 'setter.txt' %}[{{ z }}]", files: map[string]string{"setter.txt": "{% set z = 1 %}{{ z }}"}, want: "1[]"},
	{name: "include the same file twice", src: "{% include 'p.txt' %}{% include 'p.txt' %}", files: map[string]string{"p.txt": "p"}, want: "pp"},

	// extends and blocks.
	{name: "extends with super", file: "t.html", src: "{% extends 'base.html' %}{% block title %}Mine - {{ super() }}{% endblock %}{% block body %}Hi {{ name }}{% endblock %}",
		files: map[string]string{"base.html": "<title>{% block title %}Default{% endblock %}</title><body>{% block body %}{% endblock %}</body>"},
		vars:  map[string]any{"name": "<b>"}, want: "<title>Mine - Default</title><body>Hi &lt;b&gt;</body>"},
	{name: "three levels of extends", src: "{% extends 'mid.txt' %}{% block b %}child({{ super() }}){% endblock %}",
		files: map[string]string{"mid.txt": "{% extends 'base.txt' %}{% block b %}mid({{ super() }}){% endblock %}", "base.txt": "[{% block b %}base{% endblock %}|{% block c %}C{% endblock %}]"},
		want:  "[child(mid(base))|C]"},
	{name: "top-level set in a child", src: "{% extends 'base.txt' %}{% set who = 'x' %}{% block body %}{{ who }}{% endblock %}",
		files: map[string]string{"base.txt": "<{% block body %}{% endblock %}>"}, want: "<x>"},
	{name: "child text outside blocks is dropped", src: "{% extends 'base.txt' %}ignored{% block body %}B{% endblock %}ignored too",
		files: map[string]string{"base.txt": "<{% block body %}{% endblock %}>"}, want: "<B>"},
	{name: "block in a plain template", src: "a{% block x %}b{% endblock %}c", want: "abc"},
	{name: "endblock with its name", src: "{% block x %}b{% endblock x %}", want: "b"},

	// raw, comments, whitespace.
	{name: "comments", src: "{# comment #}a{# multi\nline {{ x }} #}b", want: "ab"},
	{name: "raw", src: "{% raw %}{{ not }} {% evaluated %}{% endraw %}!", want: "{{ not }} {% evaluated %}!"},
	{name: "raw with whitespace control", src: "a {%- raw -%} {{ x }} {%- endraw -%} b", want: "a{{ x }}b"},
	{name: "whitespace control", src: "a  {{- 'b' -}}  c", want: "abc"},
	{name: "whitespace control in a list", src: "<ul>\n  {%- for x in [1, 2] %}\n  <li>{{ x }}</li>\n  {%- endfor %}\n</ul>", want: "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>"},
	{name: "one trailing newline is dropped", src: "line\n", want: "line"},
	{name: "only one trailing newline is dropped", src: "a\n\n", want: "a\n"},
	{name: "newlines after tags are kept", src: "{% if true %}\nx\n{% endif %}\ny", want: "\nx\n\ny"},
	{name: "comment whitespace control", src: "a {#- c -#} b", want: "ab"},
	{name: "CRLF newlines", src: "a\r\nb", want: "a\nb"},
	{name: "braces that are not tags", src: "{ x } {a} {{ '}}' }} {{ {'a': {'b': 1}}['a']['b'] }}", want: "{ x } {a} }} 1"},

	// Autoescape.
	{name: "html escapes", file: "t.html", src: "{{ s }}", vars: map[string]any{"s": `<script>alert('x')</script> & "q"`},
		want: "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;"},
	{name: "txt does not escape", src: "{{ s }}", vars: map[string]any{"s": `<script> & "q"`}, want: `<script> & "q"`},
	{name: "htm escapes", file: "t.htm", src: "{{ s }}", vars: map[string]any{"s": "<"}, want: "&lt;"},
	{name: "xml escapes", file: "t.xml", src: "{{ s }}", vars: map[string]any{"s": "<"}, want: "&lt;"},
	{name: "upper-case extension escapes", file: "t.HTML", src: "{{ s }}", vars: map[string]any{"s": "<"}, want: "&lt;",
		noOracle: "Jinja2's select_autoescape compares the extension case-sensitively; Synapse's templates are lower-case"},
	// With variables: Jinja2 folds constants to plain strings at compile time.
	{name: "Markup concatenation", file: "t.html", src: "{{ a|safe ~ b }} {{ a|safe + b }} {{ a ~ b }}", vars: map[string]any{"a": "<i>", "b": "<b>"},
		want: "<i>&lt;b&gt; <i>&lt;b&gt; &lt;i&gt;&lt;b&gt;"},
	{name: "filters keep Markup", file: "t.html", src: "{{ '<b>x</b>'|safe|upper }} {{ '<b>'|safe|trim }}", want: "<B>X</B> <b>"},
	{name: "numbers in html", file: "t.html", src: "{{ n }} {{ [1, '<'] }}", vars: map[string]any{"n": 3}, want: "3 [1, &#39;&lt;&#39;]"},

	// Globals.
	{name: "globals", src: "{{ server_name }}", want: "example.org"},
	{name: "vars shadow globals", src: "{{ server_name }}", vars: map[string]any{"server_name": "other.org"}, want: "other.org"},
}

func TestRender(t *testing.T) {
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.render(caseOptions)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// TestAgainstJinja2 renders every case of TestRender and TestErrors with the
// real Jinja2 (the Python package, set up as Synapse sets it up) and checks
// it agrees: the same output, or both fail.
func TestAgainstJinja2(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: cannot compare with the real Jinja2")
	}
	if err := exec.Command(python, "-c", "import jinja2").Run(); err != nil {
		t.Skip("the jinja2 Python package is not installed: cannot compare with the real Jinja2")
	}
	type oracleCase struct {
		Name    string            `json:"name"`
		Files   map[string]string `json:"files"`
		Vars    map[string]any    `json:"vars"`
		Globals map[string]any    `json:"globals"`
		Base    string            `json:"base"`
	}
	var cases []renderCase
	for _, c := range append(append([]renderCase{}, renderCases...), errorCases...) {
		if c.noOracle == "" {
			cases = append(cases, c)
		}
	}
	// The renewal email's folder, with the vars of each golden file.
	renewalFiles := map[string]string{}
	root := filepath.Join("testdata", "renewal")
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "want") {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		renewalFiles[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for variant, vars := range renewalVars {
		for _, name := range []string{"account_renewal.html", "account_renewal.txt"} {
			files := map[string]string{}
			for k, v := range renewalFiles {
				if k != name {
					files[k] = v
				}
			}
			want, err := os.ReadFile(filepath.Join(root, "want", strings.Replace(name, "account_renewal", variant, 1)))
			if err != nil {
				t.Fatal(err)
			}
			cases = append(cases, renderCase{name: variant + " " + name, file: name, src: renewalFiles[name], files: files, vars: vars, want: string(want)})
		}
	}
	var in []oracleCase
	for _, c := range cases {
		files := map[string]string{c.fileName(): c.src}
		for k, v := range c.files {
			files[k] = v
		}
		in = append(in, oracleCase{Name: c.fileName(), Files: files, Vars: c.vars, Globals: caseOptions.Globals, Base: caseOptions.PublicBaseURL})
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, filepath.Join("testdata", "jinja2_oracle.py"))
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("jinja2 oracle: %v\n%s", err, stderr.String())
	}
	var results []struct {
		Out   *string `json:"out"`
		Error string  `json:"error"`
	}
	if err := json.Unmarshal(outData, &results); err != nil || len(results) != len(cases) {
		t.Fatalf("oracle output: %v (%d results for %d cases)", err, len(results), len(cases))
	}
	for i, c := range cases {
		res := results[i]
		// Go renders the vars as they arrive from Lua (through JSON here,
		// as numbers are float64 either way).
		var vars map[string]any
		if err := json.Unmarshal(mustJSON(t, c.vars), &vars); err != nil {
			t.Fatal(err)
		}
		c.vars = vars
		got, err := c.render(caseOptions)
		switch {
		case res.Out == nil && err == nil:
			t.Errorf("%s: Jinja2 fails (%s) but we render %q", c.name, res.Error, got)
		case res.Out != nil && err != nil:
			t.Errorf("%s: Jinja2 renders %q but we fail: %v", c.name, *res.Out, err)
		case res.Out != nil && *res.Out != got:
			t.Errorf("%s: Jinja2 renders\n%q\nwe render\n%q", c.name, *res.Out, got)
		case res.Out != nil && c.wantErr == "" && *res.Out != c.want:
			t.Errorf("%s: Jinja2 renders\n%q\nthe test wants\n%q", c.name, *res.Out, c.want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// errorCases fail at load or render time with an error naming file:line.
var errorCases = []renderCase{
	{name: "unknown filter", src: "a\n{{ x|nope }}", wantErr: `t.txt:2: unknown filter "nope"`},
	{name: "unknown test", src: "{{ x is nope }}", wantErr: `t.txt:1: unknown test "nope"`},
	{name: "syntax error", src: "line1\n{{ 1 + }}", wantErr: `t.txt:2: unexpected "}}"`},
	{name: "unclosed if", src: "x\n{% if x %}\nabc", wantErr: "t.txt:2: {% if %} is never closed"},
	{name: "mismatched end tag", src: "{% if x %}\n{% endfor %}", wantErr: `t.txt:2: unexpected {% endfor %}: expected "elif" or "else" or "endif" to close the {% if %} at line 1`},
	{name: "stray end tag", src: "a\n{% endif %}", wantErr: "t.txt:2: unexpected {% endif %}: no open tag to close"},
	{name: "unclosed variable", src: "{{ x ", wantErr: `t.txt:1: "{{" is never closed with }}`},
	{name: "unclosed comment", src: "a\n{# x", wantErr: "t.txt:2: comment {# is never closed"},
	{name: "unclosed string", src: "{{ 'abc }}", wantErr: "t.txt:1: string literal is never closed"},
	{name: "unclosed raw", src: "{% raw %}x", wantErr: "t.txt:1: {% raw %} is never closed"},
	{name: "bad character", src: "{{ a ? b }}", wantErr: `t.txt:1: unexpected character '?'`},
	{name: "unknown tag", src: "{% frobnicate %}", wantErr: "t.txt:1: unknown tag {% frobnicate %}"},
	{name: "unsupported macro", src: "{% macro m() %}{% endmacro %}", wantErr: "t.txt:1: {% macro %} is not supported", noOracle: "macros work in Jinja2"},
	{name: "attribute of undefined", src: "a\nb {{ missing.x }}", wantErr: `t.txt:2: "missing" is undefined, so it has no attribute "x"`},
	{name: "item of undefined", src: "{{ missing['x'] }}", wantErr: `t.txt:1: "missing" is undefined, so it has no item 'x'`},
	{name: "attribute of a missing key", src: "{{ d.a.b }}", vars: map[string]any{"d": map[string]any{}}, wantErr: `t.txt:1: the dict has no attribute "a", so it has no attribute "b"`},
	{name: "arithmetic on undefined", src: "{{ missing + 1 }}", wantErr: `t.txt:1: "missing" is undefined`},
	{name: "type error", src: "\n\n{{ 1 + 'a' }}", wantErr: "t.txt:3: unsupported operand types for +: int and str"},
	{name: "ordering different types", src: "{{ 1 < 'a' }}", wantErr: "t.txt:1: <: cannot order int and str"},
	{name: "division by zero", src: "{{ 1 / 0 }}", wantErr: "t.txt:1: division by zero"},
	{name: "modulo by zero", src: "{{ 1 % 0 }}", wantErr: "t.txt:1: integer modulo by zero"},
	{name: "calling undefined", src: "{{ nope() }}", wantErr: `t.txt:1: "nope" is undefined, so it cannot be called`},
	{name: "calling a string", src: "{{ 'a'() }}", wantErr: "t.txt:1: str is not callable"},
	{name: "include missing", src: "x\n{% include 'nope.txt' %}", wantErr: `t.txt:2: template "nope.txt": open nope.txt: file does not exist`},
	{name: "include leaving the folder", src: "{% include '../secret.txt' %}", wantErr: `t.txt:1: template name "../secret.txt" leaves the template folder`},
	{name: "include an absolute path", src: "{% include '/etc/passwd' %}", wantErr: `t.txt:1: template name "/etc/passwd" must be a relative slash-separated path`},
	{name: "include by expression leaving the folder", src: "\n{% include name %}", vars: map[string]any{"name": "../x.txt"}, wantErr: `t.txt:2: template name "../x.txt" leaves the template folder`},
	{name: "include by expression missing", src: "{% include name %}", vars: map[string]any{"name": "nope.txt"}, wantErr: `t.txt:1: template "nope.txt" not found`},
	{name: "include a number", src: "{% include 5 %}", wantErr: "t.txt:1: a template name must be a string, not int"},
	{name: "self include", src: "{% include 't.txt' %}", wantErr: "t.txt:1: include cycle: t.txt → t.txt"},
	{name: "include cycle", src: "{% include 'a.txt' %}", files: map[string]string{"a.txt": "{% include 'b.txt' %}", "b.txt": "\n{% include 'a.txt' %}"},
		wantErr: "b.txt:2: include cycle: t.txt → a.txt → b.txt → a.txt (included from a.txt:1) (included from t.txt:1)"},
	{name: "extends cycle", src: "{% extends 'a.txt' %}", files: map[string]string{"a.txt": "{% extends 't.txt' %}"}, wantErr: "a.txt:1: include cycle: t.txt → a.txt → t.txt"},
	{name: "error inside an include", src: "{% include 'part.txt' %}", files: map[string]string{"part.txt": "ok\n{{ 1 / 0 }}"}, wantErr: "part.txt:2: division by zero (included from t.txt:1)"},
	{name: "syntax error inside an include", src: "\n{% include 'part.txt' %}", files: map[string]string{"part.txt": "{% if %}"}, wantErr: `part.txt:1: unexpected "%}" (included from t.txt:2)`},
	{name: "unpack mismatch", src: "{% for a, b in [[1]] %}{% endfor %}", wantErr: "t.txt:1: cannot unpack 1 values into 2 names (a, b)"},
	{name: "not iterable", src: "{% for x in 5 %}{% endfor %}", wantErr: "t.txt:1: int is not iterable"},
	{name: "percent format with a string for %d", src: "{{ '%d' % 'x' }}", wantErr: "t.txt:1: %d format: a number is required, not str"},
	{name: "percent format arguments missing", src: "{{ '%s %s' % 'x' }}", wantErr: "not enough arguments for format string"},
	{name: "percent format arguments left over", src: "{{ '%s' % (1, 2) }}", wantErr: "not all arguments converted"},
	{name: "filter arguments", src: "{{ 'a'|replace('a') }}", wantErr: `t.txt:1: filter replace: missing argument "new"`},
	{name: "filter keyword", src: "{{ 'a'|default(nope=1) }}", wantErr: `t.txt:1: filter default: unexpected keyword argument "nope"`},
	{name: "duplicate block", src: "{% block a %}{% endblock %}\n{% block a %}{% endblock %}", wantErr: `t.txt:2: block "a" is already defined at line 1`},
	{name: "super outside a block", src: "{{ super() }}", wantErr: "t.txt:1: super() is only available inside a {% block %}"},
	{name: "super without a parent block", src: "{% block a %}{{ super() }}{% endblock %}", wantErr: `t.txt:1: block "a" has no parent block for super()`},
	{name: "endblock with another name", src: "{% block a %}{% endblock b %}", wantErr: `t.txt:1: {% endblock b %} closes block "a"`},
	{name: "dict key not a string", src: "{{ {1: 2} }}", wantErr: "t.txt:1: dict keys must be strings, not int", noOracle: "Python dicts take any key; Lua tables converted to Go have string keys"},
	{name: "format_ts of a string", src: "{{ 'x'|format_ts('%Y') }}", wantErr: "t.txt:1: filter format_ts: needs a timestamp in milliseconds, not str"},
	{name: "strftime directive unknown", src: "{{ 0|format_ts('%Q') }}", wantErr: "unsupported strftime directive %Q", noOracle: "glibc's strftime prints unknown directives as they are"},
	{name: "slice step zero", src: "{{ [1][::0] }}", wantErr: "t.txt:1: slice step cannot be zero"},
	{name: "extends not at the top level", src: "{% if true %}{% extends 'b.txt' %}{% endif %}", files: map[string]string{"b.txt": ""},
		wantErr: "t.txt:1: {% extends %} must be a top-level tag", noOracle: "Jinja2 allows a conditional extends"},
}

func TestErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.render(caseOptions)
			if err == nil {
				t.Fatalf("rendered %q, want an error containing %q", got, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error = %q\nwant one containing %q", err, c.wantErr)
			}
			var terr *Error
			if !errors.As(err, &terr) || terr.File == "" || terr.Line < 1 {
				t.Errorf("error %v is not a *jinja.Error with a file and a line", err)
			}
		})
	}
}
