// Package lpattern implements Lua 5.1's pattern matching (string.find,
// string.match, string.gmatch, string.gsub) over byte strings, with the
// C locale's character classes, in a form a host can bound and interrupt.
//
// The matcher follows lstrlib.c of Lua 5.1.5 step for step, so results,
// capture values and error messages are 5.1's, including its corners:
// errors in a pattern are raised only when matching reaches them
// (string.find("", "a[") is nil, string.find("a", "a[") an error), a
// pattern ends at its first NUL byte, "unfinished capture" is raised when
// the captures are read, not when the pattern is, and a back-reference to
// a position capture never matches. testdata/corpus.txt holds lua5.1's
// answers for 350 calls; the tests run them, and thousands of random
// calls, against this package and (when installed) lua5.1 itself.
//
// Unlike lstrlib.c, a match can be stopped: Options.Check is called every
// few thousand steps of work (a step is a matcher call or a few bytes
// scanned), and a non-nil error from it ends the match at once and is
// returned unchanged. Options.MaxSteps bounds the work outright. Nested
// matcher calls are bounded by Options.MaxDepth (default 200, Lua 5.2's
// limit, reported as "pattern too complex"); this is the one deliberate
// difference from 5.1, which has no limit and overflows its C stack on a
// deep enough pattern. Matching allocates only its result.
//
// # Building the string library on it
//
//	string.find(s, p, init, plain):
//	    m, err := cache.Find(s, p, InitOffset(init, len(s)), plain, opts)
//	    // nil m: return nil. Else m.Start+1, m.End, then m.Count(false)
//	    // values m.Get(i) (which may fail: "unfinished capture").
//	string.match(s, p, init):
//	    m, err := cache.Compile(p).Find(s, InitOffset(init, len(s)), opts)
//	    // values: m.Count(true) of m.Get(i).
//	string.gmatch(s, p):
//	    it := cache.CompileGmatch(p).Iter(s, opts) // '^' is literal here
//	    // each call: m, err := it.Next(); nil m ends; values as match.
//	string.gsub(s, p, repl, n):
//	    it := cache.Compile(p).Iter(s, opts) // '^' anchors here
//	    // while count < n: m := it.Next(); copy s[last:m.Start]; then
//	    // string/number repl: Expand; table: key m.Get(0); function: the
//	    // m.Count(true) values; false/nil keeps s[m.Start:m.End];
//	    // last = m.End. Finally copy s[last:].
//
// A position capture (Kind CapPosition) is the Lua number Start+1.
//
// # Where gopher-lua's pm matcher differs from Lua 5.1
//
// Found by FuzzMatch and TestRandomAgainstPM and settled with lua5.1; in
// each case lua5.1 and this package agree and pm does not:
//
//   - %f[set] (frontier) is not implemented: pm reads %f as the letter f.
//   - A '-' inside a set after its first item is always a range mark for
//     pm: it reads "[0--]" as {0,-} (Lua: the empty range 0..-),
//     "[a-c-e]" and "[%a-z]" as ranges ending in a class, which match
//     nothing (Lua: a lone '-'), and "[a-%d]" as a range a..%d (Lua: the
//     range a..% and then d).
//   - A back-reference to a position capture matches the empty string in
//     pm; in Lua it never matches: string.match("aa", "()a%1") is nil.
//   - A NUL byte does not end the pattern for pm.
//   - pm raises errors when it parses, even for parts the match never
//     reaches, with its own wording ("unexpected EOS at 1"); it accepts
//     a trailing '%', and more than 32 captures.
//   - pm cannot be interrupted and recurses once per backtracking point,
//     up to a million Go frames.
//
// At the string-library level, gopher-lua's gmatch anchors on '^' (5.1
// does not), and luaapi's gsub writes a trailing '%' of the replacement
// as '%' where 5.1 writes a NUL byte.
package lpattern
