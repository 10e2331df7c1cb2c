package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luahost/luahost/engine/storage"
)

// The redis backend implements storage.Leaser, so several luahost processes on one server can
// elect the one that runs background tasks.

var _ storage.Leaser = (*redisStore)(nil)

// redisLeasePrefix starts every lease key. A namespace is never empty, so no api.store key
// (luahost:<ns>:<key>) starts with it, yet an ACL key pattern luahost:* still covers it.
const redisLeasePrefix = redisKeyPrefix + ":lease:"

// leaseScript takes (SET NX PX) or renews (compare, then PEXPIRE) the lease at KEYS[1] for
// ARGV[1], for ARGV[2] milliseconds, in one atomic step; it returns the holder after the call
// and the milliseconds it has left (PTTL: -1 for a key without an expiry).
var leaseScript = goredis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {ARGV[1], tonumber(ARGV[2])}
end
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {cur, tonumber(ARGV[2])}
end
return {cur, redis.call('PTTL', KEYS[1])}
`)

// releaseScript deletes the lease at KEYS[1] when ARGV[1] holds it.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func (s *redisStore) Lease(ctx context.Context, name, holder string, ttl time.Duration) (string, time.Duration, error) {
	if err := storage.CheckLease(ctx, name, holder, ttl); err != nil {
		return "", 0, err
	}
	res, err := leaseScript.Run(ctx, s.client, []string{redisLeasePrefix + name}, holder, msTTL(ttl).Milliseconds()).Slice()
	if err != nil {
		return "", 0, s.wrap("lease", name, err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("storage: redis lease %q: unexpected reply %v", name, res)
	}
	cur, ok1 := res[0].(string)
	ms, ok2 := res[1].(int64)
	if !ok1 || !ok2 {
		return "", 0, fmt.Errorf("storage: redis lease %q: unexpected reply %v", name, res)
	}
	left := time.Duration(ms) * time.Millisecond
	if ms < 0 {
		left = -1
	}
	return cur, left, nil
}

func (s *redisStore) Release(ctx context.Context, name, holder string) error {
	if err := storage.CheckRelease(ctx, name, holder); err != nil {
		return err
	}
	err := releaseScript.Run(ctx, s.client, []string{redisLeasePrefix + name}, holder).Err()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return s.wrap("release", name, err)
	}
	return nil
}
