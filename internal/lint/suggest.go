package lint

import (
	"strings"
)

// maxSuggestLen bounds the names Suggest compares (the distance is
// quadratic in their length); longer ones only match ignoring case.
const maxSuggestLen = 128

// Suggest returns the candidate closest to name, for "did you mean": one
// that differs only in case, or else the one fewest edits away (an edit
// being an inserted, deleted or replaced byte, or two neighbours swapped,
// case ignored), allowing one edit per three bytes of name and never as
// many edits as name has bytes. It returns "" when nothing is that close;
// name itself is never suggested. Ties go to the candidate nearest in
// length, then the first in byte order.
func Suggest(name string, candidates []string) string {
	folded := ""
	for _, c := range candidates {
		if c != name && strings.EqualFold(c, name) && (folded == "" || c < folded) {
			folded = c
		}
	}
	if folded != "" {
		return folded
	}
	if len(name) > maxSuggestLen {
		return ""
	}
	limit := max(1, len(name)/3)
	if limit >= len(name) {
		limit = len(name) - 1
	}
	lname := strings.ToLower(name)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == name || len(c) > maxSuggestLen || abs(len(c)-len(name)) > limit {
			continue
		}
		d := distance(lname, strings.ToLower(c))
		if d > limit {
			continue
		}
		if d < bestD || d == bestD && better(c, best, name) {
			best, bestD = c, d
		}
	}
	return best
}

// better breaks a tie between two equally distant candidates.
func better(c, best, name string) bool {
	dc, db := abs(len(c)-len(name)), abs(len(best)-len(name))
	if dc != db {
		return dc < db
	}
	return c < best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// distance is the optimal string alignment distance: Levenshtein plus the
// swap of two neighbouring bytes as one edit (tabel -> table).
func distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
