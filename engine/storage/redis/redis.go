// Package redis is the "redis" storage backend: keys in a Redis server
// (github.com/redis/go-redis/v9), named "luahost:<ns>:<key>", so several luahost processes
// can share state. A program enables it by importing the package for its side effect, which
// registers it with engine/storage:
//
//	import _ "github.com/luahost/luahost/engine/storage/redis"
//
// and then opens it with storage.Open(storage.Config{Backend: "redis", URL: ...}).
//
// CompareAndSwap and Txn run a Lua script on the server (EVALSHA), so a Redis ACL user needs
// the @scripting commands besides @read and @write.
package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luahost/luahost/engine/storage"
)

func init() {
	storage.Register("redis", func(cfg storage.Config) (storage.Store, error) { return openRedis(cfg.URL) })
}

// redisPingTimeout bounds the reachability check of Open.
var redisPingTimeout = 3 * time.Second

// redisKeyPrefix starts every key the redis backend writes: luahost:<ns>:<key>.
const redisKeyPrefix = "luahost:"

// redisStore is the "redis" backend. Several luahost processes may share one server: every
// operation is a single command, a MULTI/EXEC transaction or a script, so they are atomic
// across processes.
type redisStore struct {
	client *goredis.Client
	url    string // redacted, for messages
}

func openRedis(rawURL string) (*redisStore, error) {
	if rawURL == "" {
		return nil, errors.New("storage: redis: no url configured (storage.url, e.g. redis://127.0.0.1:6379/0)")
	}
	shown := redactURL(rawURL)
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage: redis: invalid url %s: %w", shown, err)
	}
	s := newRedisStore(opts, shown)
	ctx, cancel := context.WithTimeout(context.Background(), redisPingTimeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		s.client.Close()
		return nil, markUnavailable(err, fmt.Errorf("storage: redis server %s is unreachable: %w", shown, err))
	}
	return s, nil
}

// newRedisStore builds the store without contacting the server. Timeouts given in the URL's
// query (dial_timeout=, read_timeout=, max_retries=, ...) win over these defaults.
func newRedisStore(opts *goredis.Options, shown string) *redisStore {
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 2 * time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 2 * time.Second
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	if opts.DialerRetries == 0 {
		// go-redis dials 5 times per attempt by default; during an outage every call
		// would wait for all of them.
		opts.DialerRetries = 2
	}
	opts.ContextTimeoutEnabled = true // honour the caller's deadline
	return &redisStore{client: goredis.NewClient(opts), url: shown}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable url>"
	}
	return u.Redacted()
}

func redisKey(ns, key string) string { return redisKeyPrefix + ns + ":" + key }

// globEscape escapes the characters that SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (s *redisStore) wrap(op, key string, err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("storage: redis %s %q: %w (%w)", op, key, storage.ErrClosed, err)
	}
	return markUnavailable(err, fmt.Errorf("storage: redis %s %q: %w", op, key, err))
}

// markUnavailable returns wrapped, marked for storage.IsUnavailable when err is a go-redis
// error that means the server cannot serve now.
func markUnavailable(err, wrapped error) error {
	if redisUnavailable(err) {
		return storage.Unavailable(wrapped)
	}
	return wrapped
}

// msTTL rounds a positive ttl up to Redis's millisecond granularity.
func msTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

func (s *redisStore) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, 0); err != nil {
		return nil, false, err
	}
	v, err := s.client.Get(ctx, redisKey(ns, key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap("get", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

func (s *redisStore) Set(ctx context.Context, ns, key string, value []byte, ttl time.Duration) error {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return err
	}
	// SET without an expiry clears an earlier one.
	if err := s.client.Set(ctx, redisKey(ns, key), value, msTTL(ttl)).Err(); err != nil {
		return s.wrap("set", key, err)
	}
	return nil
}

func (s *redisStore) Delete(ctx context.Context, ns, key string) error {
	if err := storage.CheckArgs(ctx, ns, key, 0); err != nil {
		return err
	}
	if err := s.client.Del(ctx, redisKey(ns, key)).Err(); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

func (s *redisStore) Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return 0, err
	}
	rk := redisKey(ns, key)
	var incr *goredis.IntCmd
	var err error
	if ttl == 0 {
		incr = s.client.IncrBy(ctx, rk, by)
		err = incr.Err()
	} else {
		// SET NX creates the key at 0 with the expiry only if it is missing (or expired);
		// MULTI/EXEC makes the pair atomic with respect to every other client.
		_, err = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.SetArgs(ctx, rk, "0", goredis.SetArgs{Mode: "NX", TTL: msTTL(ttl)})
			incr = p.IncrBy(ctx, rk, by)
			return nil
		})
		// SET NX answers nil when the key exists, which go-redis reports as goredis.Nil.
		if err == nil || errors.Is(err, goredis.Nil) {
			err = incr.Err()
		}
	}
	if err != nil {
		var rerr goredis.Error
		if errors.As(err, &rerr) {
			msg := rerr.Error()
			switch {
			case strings.Contains(msg, "overflow"):
				return 0, fmt.Errorf("storage: incr %q: %w", key, storage.ErrOverflow)
			case strings.Contains(msg, "not an integer"), strings.HasPrefix(msg, "WRONGTYPE"):
				return 0, fmt.Errorf("storage: incr %q: %w", key, storage.ErrNotInteger)
			}
		}
		return 0, s.wrap("incr", key, err)
	}
	return incr.Val(), nil
}

// redisScanCount is the COUNT hint of each SCAN call in List.
const redisScanCount = 1000

func (s *redisStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if err := storage.CheckNamespace(ctx, ns); err != nil {
		return nil, err
	}
	base := redisKey(ns, "")
	match := globEscape(base) + globEscape(prefix) + "*"
	// SCAN visits keys in no order and may repeat some: keep a set, trimmed to the smallest
	// MaxListKeys whenever it grows past twice that, so memory stays bounded.
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		keys, next, err := s.client.Scan(ctx, cursor, match, redisScanCount).Result()
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, k := range keys {
			seen[strings.TrimPrefix(k, base)] = struct{}{}
		}
		if len(seen) > 2*storage.MaxListKeys {
			kept := storage.SortedKeys(keysOf(seen))
			seen = make(map[string]struct{}, len(kept))
			for _, k := range kept {
				seen[k] = struct{}{}
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	return storage.SortedKeys(keysOf(seen)), nil
}

func keysOf(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// commitScript applies writes to KEYS when every key still holds the expected value, in one
// atomic step on the server; it returns 1 when it wrote, 0 when a key had changed. ARGV holds
// five arguments per key: "1" when the key must be missing (else "0"), the expected value,
// the write ("-" none, "d" delete, "s" set), the new value, and its ttl in ms ("0": none).
// Missing and expired keys read as false in GET, so they match only "must be missing".
var commitScript = goredis.NewScript(`
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local b = (i - 1) * 5
  if ARGV[b + 1] == '1' then
    if cur then return 0 end
  elseif cur ~= ARGV[b + 2] then
    return 0
  end
end
for i = 1, #KEYS do
  local b = (i - 1) * 5
  local op = ARGV[b + 3]
  if op == 'd' then
    redis.call('DEL', KEYS[i])
  elseif op == 's' then
    if ARGV[b + 5] == '0' then
      redis.call('SET', KEYS[i], ARGV[b + 4])
    else
      redis.call('SET', KEYS[i], ARGV[b + 4], 'PX', ARGV[b + 5])
    end
  end
end
return 1
`)

// commitArgs appends one key's arguments for commitScript: the expected value (nil: must be
// missing) and the write (nil w: none; nil w.Value: delete).
func commitArgs(args []any, expect []byte, w *storage.Write) []any {
	if expect == nil {
		args = append(args, "1", "")
	} else {
		args = append(args, "0", expect)
	}
	switch {
	case w == nil:
		return append(args, "-", "", "0")
	case w.Value == nil:
		return append(args, "d", "", "0")
	default:
		return append(args, "s", w.Value, strconv.FormatInt(msTTL(w.TTL).Milliseconds(), 10))
	}
}

// commit runs commitScript; args come from commitArgs, one group per key.
func (s *redisStore) commit(ctx context.Context, keys []string, args []any) (bool, error) {
	n, err := commitScript.Run(ctx, s.client, keys, args...).Int()
	return n == 1, err
}

func (s *redisStore) SetIfAbsent(ctx context.Context, ns, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	if value == nil {
		value = []byte{} // as Set: nil stores an empty value
	}
	// SET NX: Redis treats an expired key as missing.
	set, err := s.client.SetNX(ctx, redisKey(ns, key), value, msTTL(ttl)).Result()
	if err != nil {
		return false, s.wrap("setifabsent", key, err)
	}
	return set, nil
}

func (s *redisStore) CompareAndSwap(ctx context.Context, ns, key string, old, new []byte, ttl time.Duration) (bool, error) {
	if err := storage.CheckArgs(ctx, ns, key, ttl); err != nil {
		return false, err
	}
	args := commitArgs(make([]any, 0, 5), old, &storage.Write{Value: new, TTL: ttl})
	swapped, err := s.commit(ctx, []string{redisKey(ns, key)}, args)
	if err != nil {
		return false, s.wrap("compareandswap", key, err)
	}
	return swapped, nil
}

// redisTxnAttempts bounds how often Txn reads, calls fn and tries to commit before it gives
// up with ErrConflict; each failed attempt means another writer committed meanwhile.
const redisTxnAttempts = 16

// Txn is optimistic: it reads the keys with one MGET (an atomic snapshot), calls fn, and
// commits the writes with commitScript only if every key still holds the value fn saw;
// otherwise it waits a little (random, growing) and starts again. Compared with
// WATCH/MULTI/EXEC this needs two round trips instead of three, holds no connection while fn
// runs, and shares its script with CompareAndSwap. Values are compared rather than versions:
// a key rewritten with the same bytes meanwhile counts as unchanged, which is harmless, as fn
// would compute the same writes from it.
func (s *redisStore) Txn(ctx context.Context, ns string, keys []string, fn storage.TxnFunc) error {
	keys, err := storage.CheckKeys(ctx, ns, keys)
	if err != nil {
		return err
	}
	name := strings.Join(keys, " ")
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = redisKey(ns, k)
	}
	for attempt := 1; ; attempt++ {
		got, err := s.client.MGet(ctx, rkeys...).Result()
		if err != nil {
			return s.wrap("txn", name, err)
		}
		vals := make(map[string][]byte, len(keys))
		seen := make([][]byte, len(keys))
		for i, v := range got {
			if str, ok := v.(string); ok {
				seen[i] = []byte(str)
				vals[keys[i]] = []byte(str) // fn owns vals; seen stays intact
			}
		}
		writes, err := fn.Call(keys, vals)
		if err != nil {
			return err
		}
		if len(writes) == 0 {
			return nil // a read-only transaction: the MGET was atomic
		}
		args := make([]any, 0, 5*len(keys))
		for i, k := range keys {
			var wp *storage.Write
			if w, ok := writes[k]; ok {
				wp = &w
			}
			args = commitArgs(args, seen[i], wp)
		}
		ok, err := s.commit(ctx, rkeys, args)
		if err != nil {
			return s.wrap("txn", name, err)
		}
		if ok {
			return nil
		}
		if attempt == redisTxnAttempts {
			return fmt.Errorf("storage: redis txn %q: %w (%d attempts)", name, storage.ErrConflict, attempt)
		}
		// Random back-off, so that the writers that keep colliding spread out.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond))))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *redisStore) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("storage: close redis client %s: %w", s.url, err)
	}
	return nil
}

// redisUnavailable classifies go-redis errors that mean the server cannot serve now.
func redisUnavailable(err error) bool {
	return errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) ||
		errors.Is(err, goredis.ErrPoolExhausted) || goredis.IsLoadingError(err) ||
		goredis.IsMasterDownError(err) || goredis.IsClusterDownError(err) ||
		goredis.IsTryAgainError(err) || goredis.IsMaxClientsError(err) || goredis.IsReadOnlyError(err)
}
