package storage

import (
	"context"
	"fmt"
	"time"
)

// Leaser is implemented by a Store that several processes share and that can hold leases:
// named, expiring claims that at most one holder has at a time. The engine elects the one
// luahost instance that runs background tasks with it (run_background_tasks_on: any; see
// docs/instances.md). The redis backend implements it; the memory and bolt backends serve a
// single process, where a lease would elect nobody else, and do not.
//
// A lease lives apart from every namespace: no api.store key can read or overwrite it.
//
// Safety rests on the backend counting ttl from the moment it acts, which is after the
// caller sent the request: a caller that notes the time before calling Lease and stops
// acting as the holder before that time plus ttl has stopped before anyone else can take
// the lease.
type Leaser interface {
	// Lease takes the lease name for holder when it is free (never taken, expired or
	// released), or renews it when holder holds it already; either way holder then holds it
	// for ttl, counted from when the backend acted. When another holder has it, Lease
	// changes nothing. It returns the holder after the call and the time the lease has left
	// (ttl when holder has it; -1 when the backend cannot tell). name and holder are
	// non-empty strings of at most MaxKeyLen bytes; ttl is at least a millisecond.
	Lease(ctx context.Context, name, holder string, ttl time.Duration) (current string, left time.Duration, err error)
	// Release ends the lease when holder holds it and does nothing otherwise, so another
	// holder can take it at once instead of when it expires.
	Release(ctx context.Context, name, holder string) error
}

// CheckLease validates the arguments of Leaser.Lease: name and holder as CheckRelease says,
// and a ttl of at least a millisecond.
func CheckLease(ctx context.Context, name, holder string, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("storage: a lease lasts at least 1ms, got %v", ttl)
	}
	return CheckRelease(ctx, name, holder)
}

// CheckRelease validates the arguments of Leaser.Release: name and holder non-empty and at
// most MaxKeyLen bytes (else an error wrapping ErrInvalidKey), and a live ctx.
func CheckRelease(ctx context.Context, name, holder string) error {
	switch {
	case name == "" || len(name) > MaxKeyLen:
		return fmt.Errorf("storage: %w: a lease name is 1 to %d bytes, got %d", ErrInvalidKey, MaxKeyLen, len(name))
	case holder == "" || len(holder) > MaxKeyLen:
		return fmt.Errorf("storage: %w: a lease holder is 1 to %d bytes, got %d", ErrInvalidKey, MaxKeyLen, len(holder))
	}
	return ctxErr(ctx)
}
