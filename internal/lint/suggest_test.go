package lint_test

import (
	"strings"
	"testing"

	"github.com/luahost/luahost/internal/lint"
)

func TestSuggest(t *testing.T) {
	callbacks := []string{"check_event_for_spam", "user_may_invite", "user_may_join_room", "check_username_for_spam"}
	cases := []struct {
		name  string
		cands []string
		want  string
	}{
		{"tabel", []string{"string", "table", "math"}, "table"}, // a swap is one edit
		{"pirnt", []string{"pairs", "print", "pcall"}, "print"},
		{"get_threepids_for_user", []string{"get_profile_for_user", "get_threepids_for_user_id"}, "get_threepids_for_user_id"},
		{"check_event_for_spamm", callbacks, "check_event_for_spam"},
		{"user_may_join", callbacks, ""}, // five edits on thirteen bytes is too many
		{"codes", []string{"Codes", "NOT_SPAM"}, "Codes"},
		{"FORBIDEN", []string{"FORBIDDEN", "UNKNOWN"}, "FORBIDDEN"},
		{"getUser", []string{"get_user", "get_users_for_states"}, "get_user"},
		{"io", []string{"os"}, ""},            // two edits on a two-byte name
		{"x", []string{"y", "xy"}, ""},        // a one-byte name never matches with an edit
		{"ab", []string{"ac"}, "ac"},          // one edit on two bytes does
		{"print", []string{"print"}, ""},      // never the name itself
		{"print", []string{"Print"}, "Print"}, // but a different case is a suggestion
		{"print", []string{"pRINT", "Print", "prin"}, "Print"},
		{"print", []string{"Print", "pRINT", "prin"}, "Print"},
		{"zzz", []string{"print", "pairs"}, ""},
		{"cat", []string{"cart", "bat"}, "bat"}, // a tie goes to the same length
		{"cat", []string{"hat", "bat"}, "bat"},  // then to byte order
		{"", []string{"a", ""}, ""},
		{"x", nil, ""},
		{strings.Repeat("a", 200) + "b", []string{strings.Repeat("a", 200) + "c"}, ""}, // too long to compare
		{strings.Repeat("a", 200), []string{strings.Repeat("A", 200)}, strings.Repeat("A", 200)},
	}
	for _, tc := range cases {
		if got := lint.Suggest(tc.name, tc.cands); got != tc.want {
			t.Errorf("Suggest(%.20q, %.40q) = %q, want %q", tc.name, tc.cands, got, tc.want)
		}
	}
}
