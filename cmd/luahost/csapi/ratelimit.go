package csapi

import (
	"context"
	"github.com/luahost/luahost/engine"
	"math"
	"sync"
	"time"
)

// Rate limits: this development server has none of its own, so only the
// overrides modules give (ratelimit.get_ratelimit_override_for_user)
// limit anyone. The bucket follows Synapse's Ratelimiter: a leaky bucket
// of burst_count actions that drains at per_second; per_second 0 means
// no limit, as Synapse's documentation says.

type limitError struct {
	limiter      string
	retryAfterMS int64
}

func (e *limitError) Error() string { return "rate limited (" + e.limiter + ")" }

type bucketKey struct{ limiter, key string }

type bucket struct {
	count float64
	start time.Time
}

type limiter struct {
	mu      sync.Mutex
	buckets map[bucketKey]*bucket
	now     func() time.Time
}

func newLimiter() *limiter {
	return &limiter{buckets: map[bucketKey]*bucket{}, now: time.Now}
}

// take asks for one action under (limiter, key) at rate and burst; with
// record it counts the action when allowed.
func (l *limiter) take(limiterName, key string, rate, burst float64, record bool) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := bucketKey{limiterName, key}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{start: now}
	}
	performed := b.count - now.Sub(b.start).Seconds()*rate
	if performed < 0 {
		performed, b.count, b.start = 0, 0, now
	}
	if performed > burst-1 {
		allowedAt := b.start.Add(time.Duration((b.count - burst + 1) / rate * float64(time.Second)))
		return false, max(allowedAt.Sub(now), 0)
	}
	if record {
		b.count++
		l.buckets[k] = b
	}
	return true, 0
}

// ratelimit applies a module's override for userID on limiterName to
// key; without an override nothing is limited.
func (s *Server) ratelimit(ctx context.Context, userID, limiterName, key string, record bool) error {
	if !s.eng.Has(engine.CallbackGetRatelimitOverrideForUser) {
		return nil
	}
	o, err := s.eng.GetRatelimitOverrideForUser(ctx, userID, limiterName)
	if err != nil {
		return moduleErr("get_ratelimit_override_for_user", err)
	}
	if o == nil || o.PerSecond <= 0 {
		return nil
	}
	ok, wait := s.limits.take(limiterName, key, o.PerSecond, o.BurstCount, record)
	if !ok {
		return &limitError{limiter: limiterName, retryAfterMS: int64(math.Ceil(float64(wait) / float64(time.Millisecond)))}
	}
	return nil
}

// ratelimitInvite applies Synapse's three invite limiters.
func (s *Server) ratelimitInvite(ctx context.Context, inviter, roomID, invitee string) error {
	for _, l := range []struct{ name, key string }{
		{"rc_invites.per_room", roomID},
		{"rc_invites.per_user", invitee},
		{"rc_invites.per_issuer", inviter},
	} {
		if err := s.ratelimit(ctx, inviter, l.name, l.key, true); err != nil {
			return err
		}
	}
	return nil
}
