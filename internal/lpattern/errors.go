package lpattern

// Error is a pattern error. Its message is the one Lua 5.1 raises for the
// same mistake (string.find and friends raise it without a position), so a
// caller can pass it to the script unchanged.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

// The errors a pattern can raise. Lua 5.1 raises each only when the matcher
// reaches the faulty part of the pattern, and so does this package: a
// pattern that fails to match before that point returns no match and no
// error.
var (
	errEndsWithPercent = &Error{"malformed pattern (ends with '%')"}
	errMissingBracket  = &Error{"malformed pattern (missing ']')"}
	errMissingFrontier = &Error{"missing '[' after '%f' in pattern"}
	errUnbalanced      = &Error{"unbalanced pattern"} // %b without its two characters
	errCaptureIndex    = &Error{"invalid capture index"}
	errPatternCapture  = &Error{"invalid pattern capture"} // ')' with no open capture
	errTooManyCaptures = &Error{"too many captures"}
	errUnfinished      = &Error{"unfinished capture"}

	// ErrTooComplex is returned when matching needs more than
	// Options.MaxDepth nested steps. Lua 5.1 has no such limit (its C stack
	// overflows instead); Lua 5.2 and later raise this message at 200.
	ErrTooComplex = &Error{"pattern too complex"}

	// ErrStepLimit is returned when a call does more than Options.MaxSteps
	// steps of matching work.
	ErrStepLimit = &Error{"pattern too complex (step limit exceeded)"}
)
