package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/internal/ssrf"
	"github.com/luahost/luahost/luaapi"
)

// Config is a luahost config file: Synapse's `modules:` list plus the
// host's own settings. Every value remembers its line so errors point.
type Config struct {
	// File is the config file's path as given ("luahost.yaml").
	File string
	// Dir is the folder module paths are relative to.
	Dir string
	// ServerName is the homeserver's name; empty takes the Host's.
	ServerName string
	Listen     string
	DataDir    string
	Storage    StorageConfig
	HTTPClient HTTPClientConfig
	HTTPServer HTTPServerConfig
	// ModuleDirs are folders outside the config's folder that module:
	// entries may lead to through symlinks (module_dirs:; relative to
	// the config's folder).
	ModuleDirs []string
	// MemoryLimit bounds the heap of all modules together, in bytes
	// (memory_limit:; default half of the machine's or the cgroup's
	// memory).
	MemoryLimit int64
	// Email, PublicBaseURL and InstanceName are the keys of
	// config_modapi.go (api.send_mail, api.public_baseurl,
	// api.worker_name); Email is nil without an email: section.
	Email         *EmailConfig
	PublicBaseURL string
	InstanceName  string
	// Background says which instance runs background tasks
	// (run_background_tasks_on:, background_lease:; config_instances.go).
	Background BackgroundConfig
	Modules    []ModuleConfig
	// AdminListen is where luahost serve answers /metrics, /health,
	// /ready and /status; empty (the default) serves none.
	AdminListen string
	// AccessLog makes luahost serve log one line per web request.
	AccessLog bool
	// fromDisk: LoadConfig read it, so Reload can read it again.
	fromDisk       bool
	serverNameLine int
	// secrets are the values read from the environment or files
	// (secrets.go), which the engine keeps out of logs and Status.
	secrets []string
}

// StorageConfig selects api.store's backend.
type StorageConfig struct {
	Backend string // bolt (default), memory, redis
	URL     string
}

// HTTPClientConfig configures api.http_client.
type HTTPClientConfig struct {
	IPRangeAllowlist []string
}

// HTTPServerConfig is the http_server: section: the limits of the HTTP
// server `luahost serve` runs. MaxResponseBody also applies to
// Engine.Handler in an embedding homeserver; the rest are the limits an
// embedder should set on its own http.Server (see docs/embedding.md).
type HTTPServerConfig struct {
	// MaxConnections caps open connections; further clients wait in the
	// listen queue until one closes.
	MaxConnections int
	// ReadHeaderTimeout bounds reading a request's headers, ReadTimeout
	// the whole request with its body (a body trickled byte by byte is
	// cut off), WriteTimeout the time from the end of the headers to the
	// end of the response, IdleTimeout a keep-alive connection's wait for
	// its next request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers.
	MaxHeaderBytes int
	// MaxResponseBody caps a web handler's response body: a larger one is
	// answered 500 and logged with the module.
	MaxResponseBody int
}

// Defaults of http_server:.
const (
	DefaultMaxConnections    = 10000
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxResponseBody   = 64 << 20
)

var httpServerKeys = []string{"max_connections", "read_header_timeout", "read_timeout", "write_timeout",
	"idle_timeout", "max_header_bytes", "max_response_body"}

func defaultHTTPServer() HTTPServerConfig {
	return HTTPServerConfig{
		MaxConnections:    DefaultMaxConnections,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		MaxResponseBody:   DefaultMaxResponseBody,
	}
}

// ModuleConfig is one entry of `modules:`.
type ModuleConfig struct {
	// Name identifies the module in logs, errors and storage; defaults to
	// the script's file name without .lua.
	Name string
	// Module is the script path relative to the config's folder
	// (slash-separated, as read through fs.FS).
	Module      string
	Timeout     time.Duration // per call; default 5s
	InitTimeout time.Duration // loading and constructor; default 30s
	// OnError "deny" makes every check fail closed when the script errors.
	OnError string
	// Instances is how many independent states run the module (default 1;
	// `auto` is GOMAXPROCS).
	Instances int
	// MaxMemory bounds what one state of the module may hold, in bytes
	// (default 256 MiB).
	MaxMemory int64
	// StoreNamespace is the api.store namespace; default Name. Two
	// modules naming the same one share their keys on purpose.
	StoreNamespace string
	// BackgroundTimeout bounds each background call (timers,
	// run_as_background_process); default 10m, 0 = until the generation
	// closes.
	BackgroundTimeout time.Duration
	// MaxTimers caps the module's pending background calls (looping and
	// delayed; default 10,000).
	MaxTimers int
	// MaxStoreValue caps one api.store value, as JSON (default 1 MiB).
	MaxStoreValue int
	// Config is the module's `config:` value as decoded YAML (nil if absent).
	Config any
	// Line is the line of the module's entry; ConfigLine of its config:.
	Line, ConfigLine int
}

// DefaultMaxMemory is a module state's memory bound unless max_memory
// says otherwise.
const DefaultMaxMemory = 256 << 20

// Default per-module quotas.
const (
	DefaultMaxTimers     = 10000
	DefaultMaxStoreValue = 1 << 20
	// MinLoopInterval is the shortest interval of a looping background
	// call: 5,000 loops at 1 ms kept both cores busy.
	MinLoopInterval = 10 * time.Millisecond
)

const (
	DefaultTimeout     = 5 * time.Second
	DefaultInitTimeout = 30 * time.Second
	DefaultListen      = "127.0.0.1:8008"
)

// ConfigError is a problem in the config file, with its position.
type ConfigError struct {
	File string
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ConfigErrors is every problem found in one config file.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// LoadConfig reads and parses a config file.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data, file)
	if err != nil {
		return nil, err
	}
	cfg.Dir = filepath.Dir(file)
	cfg.fromDisk = true
	return cfg, nil
}

var topKeys = []string{"server_name", "listen", "admin_listen", "access_log", "data_dir", "storage", "http_client", "http_server", "memory_limit", "module_dirs", "modules", "email", "public_baseurl", "instance_name",
	"run_background_tasks_on", "background_lease"}
var moduleKeys = []string{"module", "name", "config", "timeout", "init_timeout", "on_error", "instances", "max_memory", "store_namespace", "background_timeout",
	"max_timers", "max_store_value"}

// ParseConfig parses config text; file names it in errors. All problems
// are reported, not only the first. Module paths are relative to the
// current folder until Dir is set.
func ParseConfig(data []byte, file string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ConfigErrors{{File: file, Msg: "empty config: expected a modules: list"}}
		}
		return nil, ConfigErrors{yamlError(file, err)}
	}
	// yaml.Unmarshal reads the first document and ignores the rest: a
	// second one (after ---) would be silently dropped.
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		line := next.Line
		if err != nil {
			line = 0
		}
		return nil, ConfigErrors{{File: file, Line: line, Msg: "the config holds several YAML documents (separated by ---); put everything in one"}}
	}
	if len(doc.Content) == 0 {
		return nil, ConfigErrors{{File: file, Msg: "empty config: expected a modules: list"}}
	}
	return ParseConfigNode(doc.Content[0], file)
}

// ParseConfigNode parses the luahost section of a homeserver's own YAML
// config, decoded with gopkg.in/yaml.v3: errors name file and the lines
// the node carries (its lines in the host's file).
func ParseConfigNode(root *yaml.Node, file string) (*Config, error) {
	cfg := &Config{File: file, Dir: ".", Listen: DefaultListen, HTTPServer: defaultHTTPServer()}
	var errs ConfigErrors
	fail := func(n *yaml.Node, format string, args ...any) {
		line := 0
		if n != nil {
			line = n.Line
		}
		for i, a := range args { // a value from the file is echoed at most 200 bytes
			if s, ok := a.(string); ok {
				args[i] = clip(s)
			}
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	root, cfg.secrets = resolveSecrets(root, file, fail)
	if root.Kind != yaml.MappingNode {
		return nil, ConfigErrors{{File: file, Line: root.Line, Msg: "the config must be a mapping with server_name and modules"}}
	}
	seenModules := false
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if duplicateKey(k, seen, "", fail) {
			continue
		}
		switch k.Value {
		case "memory_limit":
			n, err := parseSize(scalar(v, fail, "memory_limit"))
			if err != nil || n < 16<<20 {
				fail(v, "memory_limit must be a size of at least 16MiB, like 4GiB, got %q", v.Value)
				break
			}
			cfg.MemoryLimit = n
		case "server_name":
			cfg.ServerName = scalar(v, fail, "server_name")
			cfg.serverNameLine = v.Line
		case "listen":
			cfg.Listen = scalar(v, fail, "listen")
		case "admin_listen":
			cfg.AdminListen = scalar(v, fail, "admin_listen")
		case "access_log":
			switch val := scalar(v, fail, "access_log"); val {
			case "true", "false":
				cfg.AccessLog = val == "true"
			default:
				fail(v, "access_log must be true or false, got %q", val)
			}
		case "data_dir":
			cfg.DataDir = scalar(v, fail, "data_dir")
		case "storage":
			forEachKey(v, fail, "storage", []string{"backend", "url"}, func(k string, v *yaml.Node) {
				switch k {
				case "backend":
					cfg.Storage.Backend = scalar(v, fail, "storage.backend")
					switch cfg.Storage.Backend {
					case "bolt", "memory", "redis":
					default:
						fail(v, "storage.backend %q is not one of bolt, memory, redis", cfg.Storage.Backend)
					}
				case "url":
					cfg.Storage.URL = scalar(v, fail, "storage.url")
				}
			})
		case "http_client":
			forEachKey(v, fail, "http_client", []string{"ip_range_allowlist"}, func(k string, v *yaml.Node) {
				if v.Kind != yaml.SequenceNode {
					fail(v, "http_client.ip_range_allowlist must be a list of CIDR ranges")
					return
				}
				for _, item := range v.Content {
					cidr := scalar(item, fail, "ip_range_allowlist entry")
					if _, errs := ssrf.ParseAllowlist([]string{cidr}); len(errs) > 0 {
						fail(item, "http_client.ip_range_allowlist: %q is not a CIDR range like 10.0.0.0/8 or an IP address", cidr)
						continue
					}
					cfg.HTTPClient.IPRangeAllowlist = append(cfg.HTTPClient.IPRangeAllowlist, cidr)
				}
			})
		case "email", "public_baseurl", "instance_name":
			parseModAPIKey(cfg, k.Value, v, fail)
		case "run_background_tasks_on", "background_lease":
			parseInstancesKey(cfg, k.Value, v, fail)
		case "http_server":
			parseHTTPServer(v, &cfg.HTTPServer, fail)
		case "module_dirs":
			if v.Kind != yaml.SequenceNode {
				fail(v, "module_dirs must be a list of folders")
				break
			}
			for _, item := range v.Content {
				if d := scalar(item, fail, "module_dirs entry"); d != "" {
					cfg.ModuleDirs = append(cfg.ModuleDirs, d)
				}
			}
		case "modules":
			seenModules = true
			if v.Kind != yaml.SequenceNode {
				if v.Tag == "!!null" {
					break
				}
				fail(v, "modules must be a list of entries like `- module: spam.lua`")
				break
			}
			for idx, item := range v.Content {
				if m, ok := parseModule(item, idx+1, fail); ok {
					cfg.Modules = append(cfg.Modules, m)
				}
			}
		default:
			fail(k, "unknown key %q (valid keys: %s)%s", k.Value, ownText(strings.Join(topKeys, ", ")), ownText(didYouMean(k.Value, topKeys)))
		}
	}
	if cfg.Storage.Backend == "redis" && cfg.Storage.URL == "" {
		fail(root, "storage: backend redis needs url: redis://HOST:PORT/DB")
	}
	checkInstances(cfg, fail)
	if !seenModules {
		fail(root, "no modules: list (add `modules:` with entries like `- module: spam.lua`)")
	}
	names := map[string]int{}
	for _, m := range cfg.Modules {
		if first, dup := names[m.Name]; dup {
			fail(&yaml.Node{Line: m.Line}, "module name %q is used twice (first at line %d); set `name:` to tell them apart", m.Name, first)
		}
		names[m.Name] = m.Line
	}
	if len(errs) > 0 {
		return nil, redactConfigErrors(errs, cfg.secrets)
	}
	return cfg, nil
}

func parseModule(n *yaml.Node, idx int, fail func(*yaml.Node, string, ...any)) (ModuleConfig, bool) {
	m := ModuleConfig{Timeout: DefaultTimeout, InitTimeout: DefaultInitTimeout, Line: n.Line, Instances: 1, MaxMemory: DefaultMaxMemory,
		BackgroundTimeout: DefaultBackgroundTimeout, MaxTimers: DefaultMaxTimers, MaxStoreValue: DefaultMaxStoreValue}
	if n.Kind != yaml.MappingNode {
		fail(n, "module %d: expected a mapping like `- module: spam.lua`", idx)
		return m, false
	}
	ok := true
	nerr := 0
	failM := func(node *yaml.Node, format string, args ...any) {
		nerr++
		fail(node, "module %d: "+format, append([]any{idx}, args...)...)
	}
	forEachKey(n, failM, "", moduleKeys, func(k string, v *yaml.Node) {
		switch k {
		case "module":
			m.Module = scalar(v, failM, "module")
		case "name":
			m.Name = scalar(v, failM, "name")
		case "timeout", "init_timeout":
			limit := maxTimeout
			if k == "init_timeout" {
				limit = maxInitTimeout
			}
			d, err := parseDuration(scalar(v, failM, k), limit)
			if err != nil {
				failM(v, "%s: %v", k, err)
				return
			}
			if k == "timeout" {
				m.Timeout = d
			} else {
				m.InitTimeout = d
			}
		case "max_memory":
			n, err := parseSize(scalar(v, failM, "max_memory"))
			if err != nil || n < 1<<20 {
				failM(v, "max_memory must be a size of at least 1MiB, like 256MiB or 1GiB, got %q", v.Value)
				return
			}
			m.MaxMemory = n
		case "max_timers":
			val := scalar(v, failM, "max_timers")
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000000 {
				failM(v, "max_timers must be a number from 1 to 1000000, got %q", val)
				return
			}
			m.MaxTimers = n
		case "max_store_value":
			n, err := sizeIn(scalar(v, failM, "max_store_value"), 1<<10, 64<<20)
			if err != nil {
				failM(v, "max_store_value: %v", err)
				return
			}
			m.MaxStoreValue = n
		case "instances":
			val := scalar(v, failM, "instances")
			if val == "auto" {
				m.Instances = goruntime.GOMAXPROCS(0)
				return
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 256 {
				failM(v, "instances must be a number from 1 to 256 or auto, got %q", val)
				return
			}
			m.Instances = n
		case "store_namespace", "background_timeout":
			parseModAPIModuleKey(&m, k, v, failM)
		case "on_error":
			m.OnError = scalar(v, failM, "on_error")
			if m.OnError != "deny" && m.OnError != "default" {
				failM(v, "on_error must be \"deny\" or \"default\", got %q", m.OnError)
			}
		case "config":
			m.ConfigLine = keyLine(n, "config", v.Line)
			var val any
			if err := v.Decode(&val); err != nil {
				failM(v, "config: %v", err)
				return
			}
			m.Config = val
		}
	})
	if m.Module == "" {
		failM(n, "missing `module:` (the Lua script's path, relative to the config file)")
		return m, false
	}
	if !strings.HasSuffix(m.Module, ".lua") {
		failM(n, "module %q must be a .lua file", m.Module)
	}
	clean := path.Clean(filepath.ToSlash(m.Module))
	if path.IsAbs(clean) || strings.HasPrefix(clean, "../") {
		failM(n, "module %q must be inside the config file's folder", m.Module)
	}
	m.Module = clean
	if m.Name == "" {
		m.Name = strings.TrimSuffix(path.Base(clean), ".lua")
	}
	if !validName.MatchString(m.Name) {
		failM(n, "module name %q may only contain letters, digits, '_', '-' and '.' (it namespaces the module's storage and logs); set name:", m.Name)
	}
	if m.ConfigLine == 0 {
		m.ConfigLine = m.Line
	}
	if m.StoreNamespace == "" {
		m.StoreNamespace = m.Name
	}
	return m, ok && nerr == 0
}

// keyLine is the line of key in mapping n: errors about a value point at
// its key ("config:"), not at the value's first line below it.
func keyLine(n *yaml.Node, key string, def int) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return def
}

func parseHTTPServer(n *yaml.Node, hs *HTTPServerConfig, fail func(*yaml.Node, string, ...any)) {
	forEachKey(n, fail, "http_server", httpServerKeys, func(k string, v *yaml.Node) {
		val := scalar(v, fail, "http_server."+k)
		if val == "" {
			return
		}
		switch k {
		case "max_connections":
			c, err := strconv.Atoi(val)
			if err != nil || c < 1 || c > 1000000 {
				fail(v, "http_server.max_connections: %s must be a whole number between 1 and 1000000", val)
				return
			}
			hs.MaxConnections = c
		case "read_header_timeout", "read_timeout", "write_timeout", "idle_timeout":
			d, err := parseDuration(val, maxTimeout)
			if err != nil {
				fail(v, "http_server.%s: %v", k, err)
				return
			}
			switch k {
			case "read_header_timeout":
				hs.ReadHeaderTimeout = d
			case "read_timeout":
				hs.ReadTimeout = d
			case "write_timeout":
				hs.WriteTimeout = d
			case "idle_timeout":
				hs.IdleTimeout = d
			}
		case "max_header_bytes", "max_response_body":
			size, err := sizeIn(val, 1<<10, 1<<30)
			if err != nil {
				fail(v, "http_server.%s: %v", k, err)
				return
			}
			if k == "max_header_bytes" {
				hs.MaxHeaderBytes = size
			} else {
				hs.MaxResponseBody = size
			}
		}
	})
}

// sizeIn reads a size (see parseSize) between min and max bytes.
func sizeIn(s string, min, max int) (int, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, or with a unit: 64MiB)", clip(s))
	}
	if n < int64(min) || n > int64(max) {
		return 0, fmt.Errorf("%s must be between %s and %s", clip(s), fmtSize(min), fmtSize(max))
	}
	return int(n), nil
}

func fmtSize(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Bounds of durations in the config: below a millisecond every call
// would time out; past a day is a typo (and 1e308 overflowed).
const (
	minDuration    = time.Millisecond
	maxTimeout     = 24 * time.Hour
	maxInitTimeout = time.Hour
)

// parseDuration reads "500ms", "5s" or a number of seconds, between
// minDuration and max.
func parseDuration(s string, max time.Duration) (time.Duration, error) {
	bounds := func(d time.Duration) (time.Duration, error) {
		if d < minDuration || d > max {
			return 0, fmt.Errorf("%s must be between %s and %s", clip(s), minDuration, fmtDuration(max))
		}
		return d, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return bounds(d)
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(secs) {
		return 0, fmt.Errorf("%q is not a duration (e.g. 500ms, 5s or a number of seconds)", clip(s))
	}
	if secs*float64(time.Second) > float64(max) || secs*float64(time.Second) < float64(minDuration) {
		return bounds(0)
	}
	return bounds(time.Duration(secs * float64(time.Second)))
}

// fmtDuration writes 24h rather than 24h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	return s
}

// ownText is text of luahost's own in a config error (a list of valid
// keys): unlike values from the file, it is not cut.
type ownText string

// clip cuts a value echoed in an error to 200 bytes.
func clip(s string) string { return sandbox.Clip(s) }

func scalar(n *yaml.Node, fail func(*yaml.Node, string, ...any), what string) string {
	if n.Kind != yaml.ScalarNode {
		fail(n, "%s must be a single value", what)
		return ""
	}
	return n.Value
}

func forEachKey(n *yaml.Node, fail func(*yaml.Node, string, ...any), what string, valid []string, f func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		fail(n, "%s must be a mapping", what)
		return
	}
	ok := map[string]bool{}
	for _, v := range valid {
		ok[v] = true
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if duplicateKey(k, seen, what, fail) {
			continue
		}
		if !ok[k.Value] {
			sorted := append([]string(nil), valid...)
			sort.Strings(sorted)
			prefix := ""
			if what != "" {
				prefix = what + ": "
			}
			fail(k, "%sunknown key %q (valid keys: %s)%s", prefix, k.Value, ownText(strings.Join(sorted, ", ")), ownText(didYouMean(k.Value, valid)))
			continue
		}
		f(k.Value, n.Content[i+1])
	}
}

// duplicateKey reports a key seen before in the same mapping (yaml.v3
// keeps both when decoding into a Node; the second would silently win or
// be mistaken for something else).
func duplicateKey(k *yaml.Node, seen map[string]int, what string, fail func(*yaml.Node, string, ...any)) bool {
	first, dup := seen[k.Value]
	if !dup {
		seen[k.Value] = k.Line
		return false
	}
	prefix := ""
	if what != "" {
		prefix = what + ": "
	}
	if first > 0 {
		fail(k, "%sduplicate key %q (first at line %d)", prefix, k.Value, first)
	} else {
		fail(k, "%sduplicate key %q", prefix, k.Value)
	}
	return true
}

// didYouMean suggests the valid key closest to a misspelt one.
func didYouMean(got string, valid []string) string {
	if best := luaapi.Suggest(got, valid); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

// ConfigFromMap builds a Config from the luahost section of a homeserver's
// config decoded into a map (from JSON, TOML, ...): errors name source but
// no line, as the map has none. dir is the folder module paths are
// relative to.
func ConfigFromMap(m map[string]any, source, dir string) (*Config, error) {
	data, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}
	clearLines(&doc)
	cfg, err := ParseConfigNode(&doc, source)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	return cfg, nil
}

// clearLines drops positions that point into text the user never wrote.
func clearLines(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		clearLines(c)
	}
}

func yamlError(file string, err error) *ConfigError {
	msg := err.Error()
	// yaml.v3: "yaml: line 3: mapping values are not allowed in this context"
	var line int
	if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
		if i := strings.Index(msg, ": "); i >= 0 {
			rest := msg[i+2:]
			if j := strings.Index(rest, ": "); j >= 0 {
				msg = rest[j+2:]
			}
		}
		return &ConfigError{File: file, Line: line, Msg: "invalid YAML: " + msg}
	}
	return &ConfigError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// parseSize reads a size: bytes, or a number with a unit (KiB, MiB, GiB,
// TiB; KB, MB, GB, TB are powers of ten).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(f * mult), nil
}
