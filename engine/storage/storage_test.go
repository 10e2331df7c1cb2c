package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseInt(t *testing.T) {
	good := map[string]int64{"0": 0, "7": 7, "-7": -7, "10": 10, "9223372036854775807": 1<<63 - 1,
		"-9223372036854775808": -1 << 63}
	for s, want := range good {
		if got, ok := parseInt([]byte(s)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-0", "-01", "1.0", " 1", "1 ", "1e2", "0x10",
		"9223372036854775808", "-9223372036854775809", "18446744073709551616", "99999999999999999999"} {
		if got, ok := parseInt([]byte(s)); ok {
			t.Errorf("parseInt(%q) = %d, true; want false", s, got)
		}
	}
}

func TestIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	yes := []error{
		refused,
		fmt.Errorf("storage: redis get %q: %w", "k", refused),
		fmt.Errorf("wrapped: %w", syscall.ECONNRESET),
		context.DeadlineExceeded,
		os.ErrDeadlineExceeded,
		fmt.Errorf("x: %w", ErrClosed),
		fmt.Errorf("bolt: %w", syscall.ENOSPC),
		// A backend marks its client's own outage errors (the redis package: pool timeouts,
		// LOADING, ...), keeping their message.
		Unavailable(errors.New("redis: connection pool timeout")),
		fmt.Errorf("storage: redis get %q: %w", "k", Unavailable(errors.New("LOADING"))),
	}
	no := []error{
		nil,
		ErrNotInteger,
		fmt.Errorf("storage: incr %q: %w", "k", ErrNotInteger),
		ErrOverflow,
		ErrInvalidKey,
		context.Canceled,
		errors.New("storage: negative ttl"),
		errors.New("redis: nil"),
		ErrConflict,
		Unavailable(nil),
	}
	for _, err := range yes {
		if !IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
	}
	for _, err := range no {
		if IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = true", err)
		}
	}
}

func TestUnavailableKeepsMessageAndChain(t *testing.T) {
	cause := errors.New("LOADING Redis is loading the dataset in memory")
	inner := fmt.Errorf("storage: redis get %q: %w", "k", cause)
	err := Unavailable(inner)
	if err.Error() != inner.Error() || !errors.Is(err, cause) || errors.Unwrap(err) != inner {
		t.Fatalf("Unavailable(%v) = %v", inner, err)
	}
	if IsUnavailable(inner) || !IsUnavailable(err) {
		t.Fatal("only the marked error is unavailable")
	}
}

func TestCheckKeys(t *testing.T) {
	ctx := context.Background()
	got, err := CheckKeys(ctx, "ns", []string{"b", "a", "b", "c", "a"})
	if err != nil || !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("CheckKeys = %q, %v; want sorted without duplicates", got, err)
	}
	in := []string{"z", "y"}
	if _, err := CheckKeys(ctx, "ns", in); err != nil || in[0] != "z" {
		t.Fatalf("CheckKeys changed its argument: %q, %v", in, err)
	}
	max := make([]string, 0, 2*MaxTxnKeys)
	for i := 0; i < MaxTxnKeys; i++ {
		k := fmt.Sprintf("k%d", i)
		max = append(max, k, k) // duplicates count once
	}
	if got, err := CheckKeys(ctx, "ns", max); err != nil || len(got) != MaxTxnKeys {
		t.Fatalf("CheckKeys(%d keys twice) = %d keys, %v", MaxTxnKeys, len(got), err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		ns   string
		keys []string
		want error
	}{
		{"no keys", ctx, "ns", nil, ErrInvalidKey},
		{"empty key", ctx, "ns", []string{"a", ""}, ErrInvalidKey},
		{"bad namespace", ctx, "a:b", []string{"a"}, ErrInvalidKey},
		{"too many", ctx, "ns", append(max, "one more"), ErrInvalidKey},
		{"cancelled", cancelled, "ns", []string{"a"}, context.Canceled},
		{"nil context", nil, "ns", []string{"a"}, errNilContext},
	} {
		if _, err := CheckKeys(c.ctx, c.ns, c.keys); !errors.Is(err, c.want) {
			t.Errorf("%s: CheckKeys = %v; want %v", c.name, err, c.want)
		}
	}
}

func TestTxnFuncCall(t *testing.T) {
	keys := []string{"a", "b"}
	vals := map[string][]byte{"a": []byte(`1`)}
	for _, c := range []struct {
		name   string
		writes map[string]Write
		want   string // "" for success
	}{
		{"none", nil, ""},
		{"declared", map[string]Write{"a": {Value: nil}, "b": {Value: []byte(`2`), TTL: time.Second}}, ""},
		{"undeclared", map[string]Write{"a": {}, "c": {Value: []byte(`1`)}}, `transaction write to "c", which is not one of its keys`},
		{"negative ttl", map[string]Write{"b": {Value: []byte(`1`), TTL: -1}}, `transaction write to "b": storage: negative ttl`},
	} {
		var saw map[string][]byte
		got, err := TxnFunc(func(v map[string][]byte) (map[string]Write, error) {
			saw = v
			return c.writes, nil
		}).Call(keys, vals)
		switch {
		case c.want == "" && (err != nil || !reflect.DeepEqual(got, c.writes)):
			t.Errorf("%s: Call = %v, %v", c.name, got, err)
		case c.want != "" && (err == nil || got != nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: Call = %v, %v; want an error containing %q", c.name, got, err, c.want)
		}
		if !reflect.DeepEqual(saw, vals) {
			t.Errorf("%s: fn saw %q", c.name, saw)
		}
	}
	boom := errors.New("boom")
	if _, err := TxnFunc(func(map[string][]byte) (map[string]Write, error) { return nil, boom }).Call(keys, vals); err != boom {
		t.Fatalf("Call did not return fn's error as is: %v", err)
	}
}

func TestSortedKeys(t *testing.T) {
	if got := SortedKeys(nil); got == nil || len(got) != 0 {
		t.Fatalf("SortedKeys(nil) = %#v; want an empty slice", got)
	}
	if got := SortedKeys([]string{"b", "a10", "a2", "A"}); !reflect.DeepEqual(got, []string{"A", "a10", "a2", "b"}) {
		t.Fatalf("SortedKeys = %q; want bytewise order", got)
	}
	many := make([]string, MaxListKeys+5)
	for i := range many {
		many[i] = fmt.Sprintf("k%06d", len(many)-i)
	}
	got := SortedKeys(many)
	if len(got) != MaxListKeys || got[0] != "k000001" || got[MaxListKeys-1] != fmt.Sprintf("k%06d", MaxListKeys) {
		t.Fatalf("SortedKeys kept %d keys, %q..%q", len(got), got[0], got[len(got)-1])
	}
	if cap(got) != MaxListKeys {
		t.Fatal("appending to the result would overwrite the caller's slice")
	}
}

func TestExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	if ExpiryAt(now, 0) != 0 || Expired(0, now.UnixNano()+1e18) {
		t.Fatal("ttl 0 must mean never")
	}
	exp := ExpiryAt(now, time.Second)
	if exp != now.Add(time.Second).UnixNano() {
		t.Fatalf("ExpiryAt = %d", exp)
	}
	if Expired(exp, exp-1) || !Expired(exp, exp) || !Expired(exp, exp+1) {
		t.Fatal("a key must read as missing from its expiry instant on, not before")
	}
}
