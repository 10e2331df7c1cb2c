// Command luahost runs Lua modules for a Matrix homeserver standalone:
// `check` loads them, `call` invokes a callback, `serve` serves their web
// resources, all on the reference in-memory homeserver.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/luahost/luahost/cmd/luahost/csapi"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/fswatch"
	"github.com/luahost/luahost/engine/prommetrics"
	"github.com/luahost/luahost/internal/invoke"
)

const usage = `usage: luahost <command> [flags]

commands:
  check   -c CONFIG [--strict]            load and lint every module, list what each registered
  call    -c CONFIG CALLBACK [ARG_JSON...] invoke a callback across the modules, print the result
  serve   -c CONFIG [--listen ADDR] [--admin ADDR] [--allow-partial]
                                          serve a Client-Server API and the modules' web resources
  status  --admin URL                     show what a running serve reports: modules, generations, errors
  health  --admin URL [--ready]           exit 0 when a running serve is healthy, 1 when not
  version                                 print the version and VCS revision (also --version)
  test    [-v] [--run PATTERN] [paths...] run the modules' *_test.lua files
  new     NAME [--category CAT] [--web]   write a new module with its config, test and editor set-up

Every command takes --log-level debug|info|warn|error and --log-format text|json
(defaults from $LUAHOST_LOG_LEVEL and $LUAHOST_LOG_FORMAT).
Run 'luahost <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "call":
		return cmdCall(args[1:], stdout, stderr)
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "health":
		return cmdHealth(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		return cmdVersion(args[1:], stdout, stderr)
	case "test":
		return cmdTest(args[1:], stdout, stderr)
	case "new":
		return cmdNew(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "luahost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// common flags
type opts struct {
	config string
	log    logOpts
}

// newFlags makes a command's flag set with -c and the log flags;
// defLevel is the command's default log level.
func newFlags(name string, o *opts, defLevel string) *flag.FlagSet {
	fs := flag.NewFlagSet("luahost "+name, flag.ContinueOnError)
	fs.StringVar(&o.config, "c", "luahost.yaml", "config file")
	fs.StringVar(&o.config, "config", "luahost.yaml", "config file")
	addLogFlags(fs, &o.log, defLevel)
	return fs
}

// load reads the config and starts the engine on a fresh in-memory host.
// With partial, modules that fail are reported by Status and the rest
// load.
func load(ctx context.Context, o opts, log *slog.Logger, partial bool) (*engine.Engine, *memhost.Host, error) {
	cfg, err := engine.LoadConfig(o.config)
	if err != nil {
		return nil, nil, err
	}
	return start(ctx, cfg, engine.Options{Logger: log, AllowPartial: partial})
}

// start starts the engine for cfg on a fresh in-memory host.
func start(ctx context.Context, cfg *engine.Config, eo engine.Options) (*engine.Engine, *memhost.Host, error) {
	server := cfg.ServerName
	if server == "" {
		server = "localhost"
	}
	host := memhost.New(server)
	eo.Host, eo.Watcher = host, fswatch.New
	eo.HostHonoursContext = true // memhost never blocks
	eng, err := engine.New(ctx, cfg, eo)
	return eng, host, err
}

// loadFailures is what Status says failed, as one error.
func loadFailures(eng *engine.Engine) error {
	var errs engine.LoadErrors
	for _, st := range eng.Status() {
		if st.LastError != nil {
			errs = append(errs, st.LastError)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func printErr(stderr io.Writer, err error) {
	var le engine.LoadErrors
	var ce engine.ConfigErrors
	switch {
	case errors.As(err, &le):
		for _, e := range le {
			fmt.Fprintf(stderr, "error: %v\n", e)
		}
	case errors.As(err, &ce):
		for _, e := range ce {
			fmt.Fprintf(stderr, "error: %v\n", e)
		}
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
	}
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	var o opts
	fs := newFlags("check", &o, "warn")
	strict := fs.Bool("strict", false, "treat lint warnings as errors (exit status 1)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luahost check -c CONFIG [--strict]\n\nLoads every module and lists what each registered; exits 1 if any fails.\nLints each module's script too: warnings with file:line, errors with --strict.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	log, err := o.log.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	ctx := context.Background()
	eng, _, err := load(ctx, o, log, true)
	warnings := 0
	if eng != nil {
		warnings = lintModules(eng.Config(), stderr, *strict)
		defer eng.Close()
		err = loadFailures(eng)
		for _, m := range eng.Status() {
			if !m.Serving {
				continue
			}
			parts := []string{}
			if len(m.Callbacks) > 0 {
				parts = append(parts, "callbacks: "+strings.Join(m.Callbacks, ", "))
			}
			if len(m.Paths) > 0 {
				parts = append(parts, "web: "+strings.Join(m.Paths, ", "))
			}
			if len(parts) == 0 {
				parts = append(parts, "registers nothing")
			}
			fmt.Fprintf(stdout, "ok   %s (%s): %s\n", m.Name, m.File, strings.Join(parts, "; "))
		}
	}
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	if *strict && warnings > 0 {
		return 1
	}
	return 0
}

func cmdCall(args []string, stdout, stderr io.Writer) int {
	var o opts
	fs := newFlags("call", &o, "warn")
	var cf callFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luahost call -c CONFIG [--fixture FILE] [--store memory|config] CALLBACK [ARG_JSON ...]\n\nInvokes a callback across the modules and prints the combined answer as JSON.\nThe scripts' warnings and errors are shown; --log-level info or debug shows print() and log.info/log.debug too.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return 2
	}
	log, err := o.log.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	ctx := context.Background()
	raw, err := callArgs(fs.Args()[1:])
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	eng, closeAll, err := loadForCall(ctx, o, cf, log)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	defer closeAll()
	res, err := invoke.Call(ctx, eng, fs.Arg(0), raw)
	if err != nil {
		return callExit(stderr, err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	var o opts
	fs := newFlags("serve", &o, "info")
	listen := fs.String("listen", "", "address to listen on (default: the config's listen:, else "+engine.DefaultListen+")")
	admin := fs.String("admin", "", "address of the admin listener for /metrics, /health, /ready and /status (default: the config's admin_listen:, else none)")
	var devUsers multiFlag
	fs.Var(&devUsers, "dev-user", "create this user in the in-memory homeserver and print an access token (repeatable; @name:server or a localpart)")
	instance := fs.String("instance", "", "this instance's name among several (overrides the config's instance_name; api.worker_name)")
	noWatch := fs.Bool("no-watch", false, "do not reload when the config or a module file changes (SIGHUP still reloads)")
	var devAdmins multiFlag
	fs.Var(&devAdmins, "dev-admin", "like --dev-user, and make the user an admin")
	sharedSecret := fs.String("registration-shared-secret", "", "enable Synapse's shared-secret registration (/_synapse/admin/v1/register) with this secret")
	allowPartial := fs.Bool("allow-partial", false, "serve the modules that load and report the others (fixing their files loads them); by default one failing module stops serve")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: luahost serve -c CONFIG [flags]\n\nServes the modules' web resources on an in-memory homeserver, reloading modules as their files change.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	log, err := o.log.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	// With JSON logs, serve's own failures are log records too: whatever
	// collects the log parses every line.
	fail := func(err error) int {
		if strings.EqualFold(o.log.format, "json") {
			log.Error("luahost serve failed", "err", err)
		} else {
			printErr(stderr, err)
		}
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := engine.LoadConfig(o.config)
	if err != nil {
		return fail(err)
	}
	if *instance != "" {
		cfg.InstanceName = *instance
	}
	addr, adminAddr := *listen, *admin
	if addr == "" {
		addr = cfg.Listen
	}
	if adminAddr == "" {
		adminAddr = cfg.AdminListen
	}
	if adminAddr != "" && adminAddr == addr && !strings.HasSuffix(addr, ":0") {
		return fail(fmt.Errorf("the admin listener (%s) must not be the public one: choose another address for admin_listen or --admin", adminAddr))
	}
	// Metrics are collected only when something can read them.
	var reg *prometheus.Registry
	var metrics *prommetrics.Metrics
	eo := engine.Options{Logger: log, AllowPartial: *allowPartial}
	if adminAddr != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if metrics, err = prommetrics.New(reg); err != nil {
			return fail(err)
		}
		eo.Observer = metrics
	}
	eng, host, err := start(ctx, cfg, eo)
	if err != nil {
		return fail(err)
	}
	if metrics != nil {
		metrics.Attach(eng)
	}
	if !strings.EqualFold(o.log.format, "json") { // JSON logs have the engine's own records of it
		reportPartial(eng, stderr, *noWatch)
	}
	return serve(ctx, eng, host, cfg, addr, adminAddr, reg, serveFlags{devUsers, devAdmins, *noWatch, *sharedSecret}, log, stdout, fail)
}

type serveFlags struct {
	devUsers, devAdmins multiFlag
	noWatch             bool
	sharedSecret        string
}

// serve runs the listeners until ctx ends.
func serve(ctx context.Context, eng *engine.Engine, host *memhost.Host, cfg *engine.Config, addr, adminAddr string,
	reg *prometheus.Registry, f serveFlags, log *slog.Logger, stdout io.Writer, fail func(error) int) int {
	started := time.Now()
	defer eng.Close()
	// The modules' memory_limit is the process's too: the GC works harder
	// near it, so what a hostile script leaves behind is returned sooner.
	debug.SetMemoryLimit(eng.Config().MemoryLimit)
	// Loading leaves garbage (parse trees, compiler buffers) the heap would
	// otherwise keep as headroom: with 500 small modules, 30% of RSS.
	debug.FreeOSMemory()
	for _, m := range eng.Status() {
		log.Info("module loaded", "module", m.Name, "file", m.File,
			"callbacks", strings.Join(m.Callbacks, ","), "paths", strings.Join(m.Paths, ","))
	}
	for i, u := range append(f.devUsers, f.devAdmins...) {
		token, err := host.CreateUser(u, i >= len(f.devUsers))
		if err != nil {
			return fail(fmt.Errorf("--dev-user %s: %w", u, err))
		}
		fmt.Fprintf(stdout, "dev user %s: access token %s\n", u, token)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(err)
	}
	var adminLn net.Listener
	if adminAddr != "" {
		adminLn, err = net.Listen("tcp", adminAddr)
		if err != nil {
			ln.Close()
			return fail(fmt.Errorf("admin listener: %w", err))
		}
	}
	// Reload on file changes and on SIGHUP; a failed reload keeps the
	// running version of that module serving.
	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, bgStop := context.WithCancel(ctx)
	defer bgStop()
	if !f.noWatch {
		// Armed before "serving" is printed: an edit made after is seen.
		done, err := eng.StartWatch(bgCtx)
		if err != nil {
			log.Error("file watching is off", "err", err)
		} else {
			bg.Add(1)
			go func() {
				defer bg.Done()
				<-done
			}()
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-bgCtx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading")
				_ = eng.Reload(bgCtx) // Reload logs what it did, and each failure with its module
			}
		}
	}()
	adminDone := make(chan error, 1)
	if adminLn != nil {
		h := adminHandler(eng, reg, cfg.File, started)
		go func() { adminDone <- serveHTTP(ctx, h, adminLn, cfg.HTTPServer, 10*time.Second, log) }()
		fmt.Fprintf(stdout, "luahost: admin on http://%s\n", adminLn.Addr())
	} else {
		adminDone <- nil
	}
	// The Client-Server API owns /_matrix/ and the admin API; the rest
	// goes to the modules' web resources.
	var handler http.Handler = csapi.New(eng, host, csapi.Options{Logger: log, Fallback: eng.Handler(),
		RegistrationSharedSecret: f.sharedSecret, Done: ctx.Done()})
	if cfg.AccessLog {
		handler = accessLog(handler, log)
	}
	fmt.Fprintf(stdout, "luahost: serving %d module(s) on http://%s\n", len(eng.Status()), ln.Addr())
	err = serveHTTP(ctx, handler, ln, cfg.HTTPServer, 10*time.Second, log)
	if adminLn != nil && err != nil {
		adminLn.Close() // the public listener failed: stop the admin one too
	}
	if aerr := <-adminDone; err == nil && aerr != nil {
		err = fmt.Errorf("admin listener: %w", aerr)
	}
	if err != nil {
		return fail(err)
	}
	bgStop()
	log.Info("shut down")
	return 0
}

// accessLog logs one line per web request (access_log: true): method,
// path (without the query, which may carry an access token), status,
// bytes, duration and the client's address.
func accessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "bytes", sw.bytes,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "remote", r.RemoteAddr)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// serveHTTP runs handler on ln until ctx ends, then shuts down
// gracefully: in-flight requests finish (for up to grace). limits are the
// config's http_server: section.
func serveHTTP(ctx context.Context, handler http.Handler, ln net.Listener, limits engine.HTTPServerConfig, grace time.Duration, log *slog.Logger) error {
	maxConns := limits.MaxConnections
	if fdCap := connectionsForFiles(); fdCap > 0 && fdCap < maxConns {
		log.Warn("http_server.max_connections is above what the open-file limit allows; using less",
			"max_connections", maxConns, "using", fdCap)
		maxConns = fdCap
	}
	srv := &http.Server{Handler: handler,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(limitListener(ln, maxConns)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
