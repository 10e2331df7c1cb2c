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
	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/fswatch"
	"github.com/luahost/luahost/internal/invoke"
)

const usage = `usage: luahost <command> [flags]

commands:
  check -c CONFIG                       load every module, list what each registered
  call  -c CONFIG CALLBACK [ARG_JSON...] invoke a callback across the modules, print the result
  serve -c CONFIG [--listen ADDR]       serve a Client-Server API and the modules' web resources

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
	quiet  bool
}

func newFlags(name string, o *opts, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("luahost "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "c", "luahost.yaml", "config file")
	fs.StringVar(&o.config, "config", "luahost.yaml", "config file")
	return fs
}

func logger(stderr io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// load reads the config and starts the engine on a fresh in-memory host.
// With partial, modules that fail are reported by Status and the rest
// load.
func load(ctx context.Context, o opts, log *slog.Logger, partial bool) (*engine.Engine, *memhost.Host, error) {
	cfg, err := engine.LoadConfig(o.config)
	if err != nil {
		return nil, nil, err
	}
	server := cfg.ServerName
	if server == "" {
		server = "localhost"
	}
	host := memhost.New(server)
	eng, err := engine.New(ctx, cfg, engine.Options{Host: host, Logger: log, AllowPartial: partial, Watcher: fswatch.New,
		HostHonoursContext: true}) // memhost never blocks
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
	fs := newFlags("check", &o, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx := context.Background()
	eng, _, err := load(ctx, o, logger(stderr, slog.LevelWarn), true)
	if eng != nil {
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
	return 0
}

func cmdCall(args []string, stdout, stderr io.Writer) int {
	var o opts
	fs := newFlags("call", &o, stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: luahost call -c CONFIG CALLBACK [ARG_JSON ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return 2
	}
	ctx := context.Background()
	// Info: print() and log.info from the scripts help while debugging.
	eng, _, err := load(ctx, o, logger(stderr, slog.LevelInfo), false)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	defer eng.Close()
	raw := make([]json.RawMessage, 0, fs.NArg()-1)
	for i, a := range fs.Args()[1:] {
		if !json.Valid([]byte(a)) {
			fmt.Fprintf(stderr, "error: argument %d is not valid JSON: %s\n", i+1, a)
			return 1
		}
		raw = append(raw, json.RawMessage(a))
	}
	res, err := invoke.Call(ctx, eng, fs.Arg(0), raw)
	if err != nil {
		printErr(stderr, err)
		return 1
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
	fs := newFlags("serve", &o, stderr)
	listen := fs.String("listen", "", "address to listen on (default: the config's listen:, else "+engine.DefaultListen+")")
	var devUsers multiFlag
	fs.Var(&devUsers, "dev-user", "create this user in the in-memory homeserver and print an access token (repeatable; @name:server or a localpart)")
	noWatch := fs.Bool("no-watch", false, "do not reload when the config or a module file changes (SIGHUP still reloads)")
	var devAdmins multiFlag
	fs.Var(&devAdmins, "dev-admin", "like --dev-user, and make the user an admin")
	sharedSecret := fs.String("registration-shared-secret", "", "enable Synapse's shared-secret registration (/_synapse/admin/v1/register) with this secret")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := logger(stderr, slog.LevelInfo)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	eng, host, err := load(ctx, o, log, false)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	defer eng.Close()
	// The modules' memory_limit is the process's too: the GC works harder
	// near it, so what a hostile script leaves behind is returned sooner.
	debug.SetMemoryLimit(eng.Config().MemoryLimit)
	for _, m := range eng.Status() {
		log.Info("module loaded", "module", m.Name, "file", m.File,
			"callbacks", strings.Join(m.Callbacks, ","), "paths", strings.Join(m.Paths, ","))
	}
	for i, u := range append(devUsers, devAdmins...) {
		token, err := host.CreateUser(u, i >= len(devUsers))
		if err != nil {
			printErr(stderr, fmt.Errorf("--dev-user %s: %w", u, err))
			return 1
		}
		fmt.Fprintf(stdout, "dev user %s: access token %s\n", u, token)
	}
	addr := *listen
	if addr == "" {
		addr = eng.Config().Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		printErr(stderr, err)
		return 1
	}
	// Reload on file changes and on SIGHUP; a failed reload keeps the
	// running version of that module serving.
	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, bgStop := context.WithCancel(ctx)
	defer bgStop()
	if !*noWatch {
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
				_ = eng.Reload(bgCtx) // Reload logs each failure with its module
			}
		}
	}()
	fmt.Fprintf(stdout, "luahost: serving %d module(s) on http://%s\n", len(eng.Status()), ln.Addr())
	// The Client-Server API owns /_matrix/ and the admin API; the rest
	// goes to the modules' web resources.
	handler := csapi.New(eng, host, csapi.Options{Logger: log, Fallback: eng.Handler(),
		RegistrationSharedSecret: *sharedSecret, Done: ctx.Done()})
	if err := serveHTTP(ctx, handler, ln, 10*time.Second, log); err != nil {
		printErr(stderr, err)
		return 1
	}
	bgStop()
	log.Info("shut down")
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// serveHTTP runs handler on ln until ctx ends, then shuts down
// gracefully: in-flight requests finish (for up to grace).
func serveHTTP(ctx context.Context, handler http.Handler, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
