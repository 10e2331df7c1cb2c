package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPingTimeout bounds the reachability check of Open.
var redisPingTimeout = 3 * time.Second

// redisKeyPrefix starts every key the redis backend writes: luahost:<ns>:<key>.
const redisKeyPrefix = "luahost:"

// redisStore is the "redis" backend. Several luahost processes may share one server: every
// operation is a single command or a MULTI/EXEC transaction, so they are atomic across
// processes.
type redisStore struct {
	client *redis.Client
	url    string // redacted, for messages
}

func openRedis(rawURL string) (*redisStore, error) {
	if rawURL == "" {
		return nil, errors.New("storage: redis: no url configured (storage.url, e.g. redis://127.0.0.1:6379/0)")
	}
	shown := redactURL(rawURL)
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage: redis: invalid url %s: %w", shown, err)
	}
	s := newRedisStore(opts, shown)
	ctx, cancel := context.WithTimeout(context.Background(), redisPingTimeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		s.client.Close()
		return nil, fmt.Errorf("storage: redis server %s is unreachable: %w", shown, err)
	}
	return s, nil
}

// newRedisStore builds the store without contacting the server. Timeouts given in the URL's
// query (dial_timeout=, read_timeout=, max_retries=, ...) win over these defaults.
func newRedisStore(opts *redis.Options, shown string) *redisStore {
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
	return &redisStore{client: redis.NewClient(opts), url: shown}
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
	if errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("storage: redis %s %q: %w (%w)", op, key, ErrClosed, err)
	}
	return fmt.Errorf("storage: redis %s %q: %w", op, key, err)
}

func bg(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// msTTL rounds a positive ttl up to Redis's millisecond granularity.
func msTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

func (s *redisStore) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := validate(ns, key); err != nil {
		return nil, false, err
	}
	v, err := s.client.Get(bg(ctx), redisKey(ns, key)).Bytes()
	if errors.Is(err, redis.Nil) {
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
	if err := validate(ns, key); err != nil {
		return err
	}
	if err := validateTTL(ttl); err != nil {
		return err
	}
	// SET without an expiry clears an earlier one.
	if err := s.client.Set(bg(ctx), redisKey(ns, key), value, msTTL(ttl)).Err(); err != nil {
		return s.wrap("set", key, err)
	}
	return nil
}

func (s *redisStore) Delete(ctx context.Context, ns, key string) error {
	if err := validate(ns, key); err != nil {
		return err
	}
	if err := s.client.Del(bg(ctx), redisKey(ns, key)).Err(); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

func (s *redisStore) Incr(ctx context.Context, ns, key string, by int64, ttl time.Duration) (int64, error) {
	if err := validate(ns, key); err != nil {
		return 0, err
	}
	if err := validateTTL(ttl); err != nil {
		return 0, err
	}
	ctx = bg(ctx)
	rk := redisKey(ns, key)
	var incr *redis.IntCmd
	var err error
	if ttl == 0 {
		incr = s.client.IncrBy(ctx, rk, by)
		err = incr.Err()
	} else {
		// SET NX creates the key at 0 with the expiry only if it is missing (or expired);
		// MULTI/EXEC makes the pair atomic with respect to every other client.
		_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, rk, "0", redis.SetArgs{Mode: "NX", TTL: msTTL(ttl)})
			incr = p.IncrBy(ctx, rk, by)
			return nil
		})
		// SET NX answers nil when the key exists, which go-redis reports as redis.Nil.
		if err == nil || errors.Is(err, redis.Nil) {
			err = incr.Err()
		}
	}
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			msg := rerr.Error()
			switch {
			case strings.Contains(msg, "overflow"):
				return 0, fmt.Errorf("storage: incr %q: %w", key, ErrOverflow)
			case strings.Contains(msg, "not an integer"), strings.HasPrefix(msg, "WRONGTYPE"):
				return 0, fmt.Errorf("storage: incr %q: %w", key, ErrNotInteger)
			}
		}
		return 0, s.wrap("incr", key, err)
	}
	return incr.Val(), nil
}

// redisScanCount is the COUNT hint of each SCAN call in List.
const redisScanCount = 1000

func (s *redisStore) List(ctx context.Context, ns, prefix string) ([]string, error) {
	if err := validateNS(ns); err != nil {
		return nil, err
	}
	ctx = bg(ctx)
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
		if len(seen) > 2*MaxListKeys {
			kept := truncateSorted(sortedKeys(seen))
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
	return truncateSorted(sortedKeys(seen)), nil
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *redisStore) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("storage: close redis client %s: %w", s.url, err)
	}
	return nil
}

// redisUnavailable classifies go-redis errors that mean the server cannot serve now.
func redisUnavailable(err error) bool {
	return errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, redis.ErrPoolExhausted) || redis.IsLoadingError(err) ||
		redis.IsMasterDownError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMaxClientsError(err) || redis.IsReadOnlyError(err)
}
