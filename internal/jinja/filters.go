package jinja

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type filterFunc func(r *renderer, v any, args []any, kwargs map[string]any) (any, error)

// filters are Jinja's built-in filters this engine implements, plus
// Synapse's format_ts, mxc_to_http and localpart_from_email.
var filters map[string]filterFunc

func init() {
	filters = map[string]filterFunc{
		"abs":                  filterAbs,
		"capitalize":           stringFilter(capitalize),
		"count":                filterLength,
		"d":                    filterDefault,
		"default":              filterDefault,
		"e":                    filterEscape,
		"escape":               filterEscape,
		"first":                filterFirst,
		"float":                filterFloat,
		"format":               filterFormat,
		"format_ts":            filterFormatTS,
		"int":                  filterInt,
		"items":                filterItems,
		"join":                 filterJoin,
		"last":                 filterLast,
		"length":               filterLength,
		"list":                 filterList,
		"localpart_from_email": stringFilter(localpartFromEmail),
		"lower":                stringFilter(strings.ToLower),
		"mxc_to_http":          filterMxcToHTTP,
		"replace":              filterReplace,
		"reverse":              filterReverse,
		"round":                filterRound,
		"safe":                 filterSafe,
		"sort":                 filterSort,
		"string":               filterString,
		"title":                stringFilter(title),
		"trim":                 filterTrim,
		"truncate":             filterTruncate,
		"upper":                stringFilter(strings.ToUpper),
		"urlencode":            filterURLEncode,
		"wordcount":            filterWordcount,
	}
}

// stringInput are the filters that work on their value as a string: a list
// or map given to them is turned into its string first (see stringify).
var stringInput = map[string]bool{
	"capitalize": true, "e": true, "escape": true, "format": true, "localpart_from_email": true,
	"lower": true, "replace": true, "safe": true, "string": true, "title": true, "trim": true,
	"truncate": true, "upper": true, "wordcount": true,
}

type requiredMarker struct{}

// required marks a parameter without a default in bind.
var required any = &requiredMarker{}

type param struct {
	name string
	def  any
}

// bind matches positional and keyword arguments to parameters, as Python
// does for the filter's signature.
func bind(args []any, kwargs map[string]any, ps ...param) ([]any, error) {
	if len(args) > len(ps) {
		return nil, fmt.Errorf("takes at most %d arguments (%d given)", len(ps), len(args))
	}
	out := make([]any, len(ps))
	for i, p := range ps {
		if i < len(args) {
			out[i] = args[i]
		} else {
			out[i] = p.def
		}
	}
	for k, v := range kwargs {
		found := false
		for i, p := range ps {
			if p.name == k {
				if i < len(args) {
					return nil, fmt.Errorf("got two values for argument %q", k)
				}
				out[i] = v
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unexpected keyword argument %q", k)
		}
	}
	for i, v := range out {
		if v == required {
			return nil, fmt.Errorf("missing argument %q", ps[i].name)
		}
	}
	return out, nil
}

func noArgs(args []any, kwargs map[string]any) error {
	if len(args) > 0 || len(kwargs) > 0 {
		return errors.New("takes no arguments")
	}
	return nil
}

// stringFilter applies f to the value as a string; Markup stays Markup.
func stringFilter(f func(string) string) filterFunc {
	return func(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
		if err := noArgs(args, kwargs); err != nil {
			return nil, err
		}
		if m, ok := v.(Markup); ok {
			return Markup(f(string(m))), nil
		}
		return f(str(v)), nil
	}
}

func capitalize(s string) string {
	first, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(first)) + strings.ToLower(s[n:])
}

// title upper-cases the first letter of every word and lower-cases the
// rest; words start after whitespace, "-", "(", "{", "[" or "<" (Jinja's
// title filter).
func title(s string) string {
	var b strings.Builder
	start := true
	for _, c := range s {
		if unicode.IsSpace(c) || strings.ContainsRune("-({[<", c) {
			start = true
			b.WriteRune(c)
			continue
		}
		if start {
			b.WriteRune(unicode.ToUpper(c))
		} else {
			b.WriteRune(unicode.ToLower(c))
		}
		start = false
	}
	return b.String()
}

func localpartFromEmail(s string) string {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[:i]
	}
	return s
}

func filterEscape(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	return escapeValue(v), nil
}

func filterSafe(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	return Markup(str(v)), nil
}

func filterString(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	if m, ok := v.(Markup); ok {
		return m, nil
	}
	return str(v), nil
}

func filterTrim(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"chars", nil})
	if err != nil {
		return nil, err
	}
	trim := func(s string) string {
		if a[0] == nil {
			return strings.TrimFunc(s, unicode.IsSpace)
		}
		return strings.Trim(s, str(a[0]))
	}
	if m, ok := v.(Markup); ok {
		return Markup(trim(string(m))), nil
	}
	return trim(str(v)), nil
}

func filterDefault(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"default_value", ""}, param{"boolean", false})
	if err != nil {
		return nil, err
	}
	if _, ok := v.(*undefined); ok || (truthy(a[1]) && !truthy(v)) {
		return a[0], nil
	}
	return v, nil
}

func filterLength(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	n, ok := length(v)
	if !ok {
		return nil, fmt.Errorf("%s has no length", typeName(v))
	}
	return int64(n), nil
}

// iterItems lists what iterating v gives (see renderer.iterate).
func (r *renderer) iterItems(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case map[string]any, string, Markup, *undefined:
		return r.iterate(v, 0)
	}
	return nil, fmt.Errorf("%s is not iterable", typeName(v))
}

func filterJoin(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"d", ""}, param{"attribute", nil})
	if err != nil {
		return nil, err
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	if err := r.step(len(items)); err != nil {
		return nil, err
	}
	vals := make([]any, len(items))
	anyMarkup := false
	for i, item := range items {
		item = norm(item)
		if a[1] != nil {
			if item, err = getItem(item, a[1]); err != nil {
				return nil, err
			}
		}
		vals[i] = item
		if _, ok := item.(Markup); ok {
			anyMarkup = true
		}
	}
	if _, ok := a[0].(Markup); ok {
		anyMarkup = true
	}
	escape := r.autoescape && anyMarkup
	var b sizeLimitedBuilder
	b.max = r.opts.MaxOutputBytes
	for i, item := range vals {
		if i > 0 {
			if escape {
				b.add(string(escapeValue(a[0])))
			} else {
				b.add(str(a[0]))
			}
		}
		s, err := r.stringify(item)
		if err != nil {
			return nil, err
		}
		if escape {
			s = string(escapeValue(item))
		}
		b.add(s)
		if b.err != nil {
			return nil, b.err
		}
	}
	if escape {
		return Markup(b.String()), nil
	}
	return b.String(), nil
}

func filterReplace(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"old", required}, param{"new", required}, param{"count", nil})
	if err != nil {
		return nil, err
	}
	count := -1
	if a[2] != nil {
		n, ok := intIndex(a[2])
		if !ok {
			return nil, fmt.Errorf("count must be an integer, not %s", typeName(a[2]))
		}
		count = int(n)
	}
	_, sMarkup := v.(Markup)
	_, oldMarkup := a[0].(Markup)
	_, newMarkup := a[1].(Markup)
	s, old, repl := str(v), str(a[0]), str(a[1])
	markup := false
	if r.autoescape {
		if oldMarkup || (newMarkup && !sMarkup) {
			s = string(escapeValue(v))
			markup = true
		} else if sMarkup {
			markup = true
		}
		if markup { // Markup.replace escapes its arguments
			old, repl = string(escapeValue(a[0])), string(escapeValue(a[1]))
		}
	}
	n := strings.Count(s, old)
	if old == "" {
		n = utf8.RuneCountInString(s) + 1
	}
	if count >= 0 && count < n {
		n = count
	}
	if err := r.checkLen(len(s) + n*(len(repl)-len(old))); err != nil {
		return nil, err
	}
	res := strings.Replace(s, old, repl, count)
	if markup {
		return Markup(res), nil
	}
	return res, nil
}

func filterFormat(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if len(args) > 0 && len(kwargs) > 0 {
		return nil, errors.New("takes positional or keyword arguments, not both")
	}
	var fargs any = args
	if len(kwargs) > 0 {
		fargs = kwargs
	}
	if args == nil && kwargs == nil {
		fargs = []any{}
	}
	_, isMarkup := v.(Markup)
	s, err := pyFormat(str(v), fargs, isMarkup, r.opts.MaxOutputBytes, r.stringify)
	if err != nil {
		return nil, err
	}
	if isMarkup {
		return Markup(s), nil
	}
	return s, nil
}

func filterFirst(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &undefined{desc: "no first item of an empty sequence"}, nil
	}
	return norm(items[0]), nil
}

func filterLast(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return &undefined{desc: "no last item of an empty sequence"}, nil
	}
	return norm(items[len(items)-1]), nil
}

func filterList(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	return append([]any(nil), items...), nil
}

func filterItems(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case map[string]any:
		return dictItems(r, x)
	case *undefined:
		return []any{}, nil
	}
	return nil, fmt.Errorf("%s is not a dict", typeName(v))
}

func dictItems(r *renderer, m map[string]any) (any, error) {
	if err := r.step(len(m)); err != nil {
		return nil, err
	}
	out := make([]any, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, []any{k, m[k]})
	}
	return out, nil
}

func filterInt(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"default", int64(0)}, param{"base", int64(10)})
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) >= 1<<63 {
			return a[0], nil
		}
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case string, Markup:
		s := strings.TrimSpace(str(x))
		base, _ := intIndex(a[1])
		if base < 2 || base > 36 {
			base = 10
		}
		if n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), int(base), 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
	}
	return a[0], nil
}

func filterFloat(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"default", 0.0})
	if err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case int64, float64, bool:
		return toFloat(x), nil
	case string, Markup:
		if f, err := strconv.ParseFloat(strings.TrimSpace(str(x)), 64); err == nil {
			return f, nil
		}
	}
	return a[0], nil
}

func filterAbs(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case int64:
		if x < 0 {
			if x == math.MinInt64 {
				return -float64(x), nil
			}
			return -x, nil
		}
		return x, nil
	case float64:
		return math.Abs(x), nil
	}
	return nil, fmt.Errorf("bad operand type for abs: %s", typeName(v))
}

func filterRound(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"precision", int64(0)}, param{"method", "common"})
	if err != nil {
		return nil, err
	}
	prec, ok := intIndex(a[0])
	if !ok || prec < -20 || prec > 20 {
		return nil, fmt.Errorf("precision must be an integer from -20 to 20")
	}
	if !isNumber(v) {
		return nil, fmt.Errorf("cannot round %s", typeName(v))
	}
	f := toFloat(v)
	scale := math.Pow(10, float64(prec))
	switch str(a[1]) {
	case "common":
		if _, isInt := v.(int64); isInt && prec >= 0 {
			return v, nil
		}
		return math.RoundToEven(f*scale) / scale, nil
	case "ceil":
		return math.Ceil(f*scale) / scale, nil
	case "floor":
		return math.Floor(f*scale) / scale, nil
	}
	return nil, fmt.Errorf("method must be common, ceil or floor, not %q", str(a[1]))
}

func filterReverse(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	if isStringish(v) {
		runes := []rune(str(v))
		for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
			runes[i], runes[j] = runes[j], runes[i]
		}
		if _, ok := v.(Markup); ok {
			return Markup(string(runes)), nil
		}
		return string(runes), nil
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(items))
	for i, item := range items {
		out[len(items)-1-i] = item
	}
	return out, nil
}

func filterSort(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"reverse", false}, param{"case_sensitive", false}, param{"attribute", nil})
	if err != nil {
		return nil, err
	}
	items, err := r.iterItems(v)
	if err != nil {
		return nil, err
	}
	if err := r.step(len(items)); err != nil {
		return nil, err
	}
	keys := make([]any, len(items))
	for i, item := range items {
		k := norm(item)
		if a[2] != nil {
			if k, err = getItem(k, a[2]); err != nil {
				return nil, err
			}
		}
		if !truthy(a[1]) && isStringish(k) {
			k = strings.ToLower(str(k))
		}
		keys[i] = k
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var cmpErr error
	sort.SliceStable(idx, func(i, j int) bool {
		c, err := compare(keys[idx[i]], keys[idx[j]])
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		if truthy(a[0]) {
			return c > 0
		}
		return c < 0
	})
	if cmpErr != nil {
		return nil, cmpErr
	}
	out := make([]any, len(items))
	for i, j := range idx {
		out[i] = items[j]
	}
	return out, nil
}

// urlQuote percent-encodes s like Python's urllib.parse.quote: letters,
// digits and "_.-~" stay, and so do the bytes in safe.
func urlQuote(s, safe string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isNameChar(c) || strings.IndexByte(".-~", c) >= 0 || strings.IndexByte(safe, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func filterURLEncode(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	forQS := func(x any) string { return strings.ReplaceAll(urlQuote(str(norm(x)), ""), "%20", "+") }
	switch x := v.(type) {
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, forQS(k)+"="+forQS(x[k]))
		}
		return strings.Join(parts, "&"), nil
	case []any:
		parts := make([]string, 0, len(x))
		for _, item := range x {
			pair, ok := norm(item).([]any)
			if !ok || len(pair) != 2 {
				return nil, errors.New("a list to urlencode must hold [key, value] pairs")
			}
			parts = append(parts, forQS(pair[0])+"="+forQS(pair[1]))
		}
		return strings.Join(parts, "&"), nil
	}
	return urlQuote(str(v), "/"), nil
}

func filterTruncate(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"length", int64(255)}, param{"killwords", false}, param{"end", "..."}, param{"leeway", int64(5)})
	if err != nil {
		return nil, err
	}
	n, ok1 := intIndex(a[0])
	leeway, ok2 := intIndex(a[3])
	end := str(a[2])
	endLen := int64(utf8.RuneCountInString(end))
	if !ok1 || !ok2 || n < endLen || leeway < 0 {
		return nil, fmt.Errorf("length must be an integer at least as long as end (%d), leeway a non-negative integer", endLen)
	}
	runes := []rune(str(v))
	if int64(len(runes)) <= n+leeway {
		return str(v), nil
	}
	cut := string(runes[:n-endLen])
	if truthy(a[1]) {
		return cut + end, nil
	}
	if i := strings.LastIndexByte(cut, ' '); i >= 0 {
		cut = cut[:i]
	}
	return cut + end, nil
}

func filterWordcount(_ *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	if err := noArgs(args, kwargs); err != nil {
		return nil, err
	}
	n, in := 0, false
	for _, c := range str(v) {
		word := c == '_' || unicode.IsLetter(c) || unicode.IsDigit(c)
		if word && !in {
			n++
		}
		in = word
	}
	return int64(n), nil
}

// filterFormatTS is Synapse's format_ts: a timestamp in milliseconds,
// formatted with strftime in the configured time zone.
func filterFormatTS(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"format", required})
	if err != nil {
		return nil, err
	}
	if !isNumber(v) {
		return nil, fmt.Errorf("needs a timestamp in milliseconds, not %s", typeName(v))
	}
	ms := toFloat(v)
	if math.IsNaN(ms) || math.Abs(ms) > 1e17 {
		return nil, fmt.Errorf("timestamp %s is out of range", scalarStr(v))
	}
	t := time.UnixMilli(int64(ms)).In(r.opts.Location)
	return strftime(str(a[0]), t)
}

// filterMxcToHTTP is Synapse's mxc_to_http: the thumbnail URL of an mxc://
// URI on this homeserver, "" for anything else.
func filterMxcToHTTP(r *renderer, v any, args []any, kwargs map[string]any) (any, error) {
	a, err := bind(args, kwargs, param{"width", required}, param{"height", required}, param{"resize_method", "crop"})
	if err != nil {
		return nil, err
	}
	if r.opts.PublicBaseURL == "" {
		return nil, errors.New("public_baseurl must be set in the homeserver config to convert MXC URLs to HTTP URLs")
	}
	s := str(v)
	if !strings.HasPrefix(s, "mxc://") {
		return "", nil
	}
	serverAndID, fragment, hasFragment := strings.Cut(s[len("mxc://"):], "#")
	q := "width=" + url.QueryEscape(str(a[0])) + "&height=" + url.QueryEscape(str(a[1])) + "&method=" + url.QueryEscape(str(a[2]))
	res := r.opts.PublicBaseURL + "_matrix/media/v1/thumbnail/" + serverAndID + "?" + q
	if hasFragment {
		res += "#" + fragment
	}
	return res, nil
}
