package tests

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// There is no Docker engine where the tests run, so the Dockerfile is
// checked the other way round: its build stage's commands run here on the
// build context that .dockerignore selects, and the final stage is read
// for what Docker would do with it. The test fails when the build line no
// longer builds, the binary is not static (the final image has no libc),
// the final stage runs as root, the healthcheck or the volumes go, or the
// command points outside the volumes.

const (
	dockerfilePath = "../Dockerfile"
	// Where the build stage puts what the final stage copies. The build
	// stage's commands run with this prefix moved to a temporary folder.
	dockerOut = "/out"
	// The data folder: the final stage's user must own it.
	dockerDataDir = "/var/lib/luahost"
)

// instr is one Dockerfile instruction, continuation lines joined.
type instr struct {
	line  int    // line of its first line
	cmd   string // upper case: FROM, RUN, COPY, ...
	flags map[string]string
	args  string // the rest, flags removed
}

type stage struct {
	name   string
	from   string
	instrs []instr
}

func (s stage) all(cmd string) []instr {
	var out []instr
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(cmd string) (instr, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instr{}, false
	}
	return all[len(all)-1], true
}

func parseDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages []stage
		cur    strings.Builder
		start  int
		n      int
	)
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		word, rest, _ := strings.Cut(text, " ")
		in := instr{line: start, cmd: strings.ToUpper(word), flags: map[string]string{}}
		rest = strings.TrimSpace(rest)
		// Flags (--from=build, --chown=..., --interval=...) come first.
		for strings.HasPrefix(rest, "--") {
			flag, after, _ := strings.Cut(rest, " ")
			k, v, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
			in.flags[k] = v
			rest = strings.TrimSpace(after)
		}
		in.args = rest
		if in.cmd == "FROM" {
			s := stage{from: rest}
			if img, name, ok := strings.Cut(rest, " "); ok {
				s.from = img
				if as, n, ok := strings.Cut(strings.TrimSpace(name), " "); ok && strings.EqualFold(as, "AS") {
					s.name = strings.TrimSpace(n)
				}
			}
			stages = append(stages, s)
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before FROM", file, in.line, in.cmd)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		// Comment lines are dropped, also inside a continued instruction.
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body)
			cur.WriteString("\n")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("%s: %d stage(s); want a build stage and a final stage", file, len(stages))
	}
	return stages
}

// execForm parses a JSON array argument (CMD ["a", "b"]).
func execForm(t *testing.T, in instr) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil || len(v) == 0 {
		t.Fatalf("Dockerfile:%d: %s %s: want the exec form, a JSON array of strings", in.line, in.cmd, in.args)
	}
	return v
}

// dockerignore is a .dockerignore file: later patterns win, and a pattern
// that matches a folder matches everything in it, as in Docker.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

func parseDockerignore(t *testing.T, file string) dockerignore {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerignore
	for i, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			exclude, p = false, strings.TrimSpace(rest)
		}
		p = strings.TrimPrefix(path.Clean(p), "/")
		if strings.ContainsAny(p, "[]\\") {
			t.Fatalf(".dockerignore:%d: %q: character classes and escapes are not supported by this test's matcher", i+1, p)
		}
		var re strings.Builder
		re.WriteString("^")
		for j := 0; j < len(p); j++ {
			switch {
			case strings.HasPrefix(p[j:], "**/"):
				re.WriteString("(.*/)?")
				j += 2
			case strings.HasPrefix(p[j:], "**"):
				re.WriteString(".*")
				j++
			case p[j] == '*':
				re.WriteString("[^/]*")
			case p[j] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[j : j+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	return d
}

// excluded reports whether rel (slash-separated, relative to the context)
// stays out of the build context.
func (d dockerignore) excluded(rel string) bool {
	var prefixes []string
	for p := rel; p != "."; p = path.Dir(p) {
		prefixes = append(prefixes, p)
	}
	out := false
	for _, pat := range d {
		for _, p := range prefixes {
			if pat.re.MatchString(p) {
				out = pat.exclude
				break
			}
		}
	}
	return out
}

// buildContext copies the files Docker would send (the repository minus
// .dockerignore) into a new folder.
func buildContext(t *testing.T, root string) string {
	t.Helper()
	ignore := parseDockerignore(t, filepath.Join(root, ".dockerignore"))
	dst := filepath.Join(t.TempDir(), "context")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ignore.excluded(filepath.ToSlash(rel)) || !d.Type().IsRegular() {
			return nil
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copying the build context: %v", err)
	}
	return dst
}

var outPrefix = regexp.MustCompile(`(^|[^\w/.-])` + regexp.QuoteMeta(dockerOut) + `\b`)

// runBuildStage runs the build stage's RUN commands with its SHELL and ENV
// in a copy of the build context, with /out moved to a temporary folder,
// which it returns.
func runBuildStage(t *testing.T, build stage, ctxDir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	shell := []string{"/bin/sh", "-c"}
	// Like the golang images: no toolchain download, the Go here builds or fails.
	env := []string{"GOTOOLCHAIN=local"}
	for _, kv := range os.Environ() {
		// The Dockerfile must choose these itself.
		if k, _, _ := strings.Cut(kv, "="); k == "CGO_ENABLED" || k == "GOTOOLCHAIN" || k == "GOOS" || k == "GOARCH" {
			continue
		}
		env = append(env, kv)
	}
	for _, in := range build.instrs {
		switch in.cmd {
		case "SHELL":
			shell = execForm(t, in)
		case "ENV":
			for _, kv := range strings.Fields(in.args) {
				if !strings.Contains(kv, "=") {
					t.Fatalf("Dockerfile:%d: ENV %s: use the KEY=value form", in.line, in.args)
				}
				env = append(env, kv)
			}
		case "COPY", "ADD":
			if in.flags["from"] != "" {
				continue
			}
			// The context copy stands in for every COPY from the context:
			// what it names must be in it.
			fields := strings.Fields(in.args)
			for _, src := range fields[:len(fields)-1] {
				if _, err := os.Stat(filepath.Join(ctxDir, src)); err != nil {
					t.Errorf("Dockerfile:%d: COPY %s: not in the build context (.dockerignore?)", in.line, src)
				}
			}
		case "RUN":
			script := outPrefix.ReplaceAllString(in.args, "${1}"+out)
			var cmd *exec.Cmd
			if strings.HasPrefix(script, "[") {
				argv := execForm(t, instr{line: in.line, cmd: "RUN", args: script})
				cmd = exec.Command(argv[0], argv[1:]...)
			} else {
				cmd = exec.Command(shell[0], append(slices.Clone(shell[1:]), script)...)
			}
			cmd.Dir = ctxDir
			cmd.Env = env
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("Dockerfile:%d: RUN %s\nfailed: %v\n%s", in.line, in.args, err, b)
			}
		}
	}
	return out
}

// goModGo returns go.mod's go line as major, minor.
func goModGo(t *testing.T) (int, int) {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return major, minor
}

// flagValue returns the value of a flag given as "-name value" or
// "-name=value", and a function that replaces that value in args.
func flagValue(args []string, names ...string) (string, func(string), bool) {
	for i, a := range args {
		for _, name := range names {
			if a == name && i+1 < len(args) {
				return args[i+1], func(v string) { args[i+1] = v }, true
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v, func(v string) { args[i] = name + "=" + v }, true
			}
		}
	}
	return "", nil, false
}

func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, dockerfilePath)
	final := stages[len(stages)-1]
	var build stage
	for _, s := range stages[:len(stages)-1] {
		if s.name == "build" {
			build = s
		}
	}
	if build.name == "" {
		t.Fatal("Dockerfile: no stage named build")
	}

	entry, ok := final.last("ENTRYPOINT")
	if !ok {
		t.Fatal("Dockerfile: the final stage has no ENTRYPOINT")
	}
	entrypoint := execForm(t, entry)
	cmdIn, ok := final.last("CMD")
	if !ok {
		t.Fatal("Dockerfile: the final stage has no CMD")
	}
	cmdArgs := execForm(t, cmdIn)
	var volumes []string
	for _, in := range final.all("VOLUME") {
		volumes = append(volumes, execForm(t, in)...)
	}
	user := ""
	if in, ok := final.last("USER"); ok {
		user = in.args
	}

	t.Run("builder Go is at least go.mod's", func(t *testing.T) {
		m := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(build.from)
		if m == nil {
			t.Fatalf("build stage FROM %s: want golang:MAJOR.MINOR[...]", build.from)
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		wantMajor, wantMinor := goModGo(t)
		if major < wantMajor || (major == wantMajor && minor < wantMinor) {
			t.Errorf("build stage FROM %s, but go.mod says go %d.%d: the image's GOTOOLCHAIN=local refuses to build",
				build.from, wantMajor, wantMinor)
		}
	})

	t.Run("final stage runs as non-root", func(t *testing.T) {
		name, _, _ := strings.Cut(user, ":")
		if name == "" || name == "0" || name == "root" {
			t.Fatalf("final stage USER %q: want a non-root user (distroless's nonroot is 65532)", user)
		}
	})

	t.Run("healthcheck runs the binary", func(t *testing.T) {
		in, ok := final.last("HEALTHCHECK")
		if !ok {
			t.Fatal("final stage has no HEALTHCHECK")
		}
		rest, isCmd := strings.CutPrefix(in.args, "CMD ")
		if !isCmd {
			t.Fatalf("Dockerfile:%d: HEALTHCHECK %s: want HEALTHCHECK [options] CMD [...]", in.line, in.args)
		}
		argv := execForm(t, instr{line: in.line, cmd: "HEALTHCHECK", args: strings.TrimSpace(rest)})
		// No shell, curl or wget in the image: only the binary can check.
		if argv[0] != entrypoint[0] {
			t.Errorf("HEALTHCHECK runs %s, want the image's binary %s", argv[0], entrypoint[0])
		}
	})

	t.Run("command's paths are in the volumes", func(t *testing.T) {
		if len(cmdArgs) == 0 || cmdArgs[0] != "serve" {
			t.Fatalf("CMD %q: want serve", cmdArgs)
		}
		conf, _, ok := flagValue(cmdArgs, "-c", "--c", "-config", "--config")
		if !ok {
			t.Fatalf("CMD %q: no -c CONFIG", cmdArgs)
		}
		if !slices.ContainsFunc(volumes, func(v string) bool { return under(conf, v) }) {
			t.Errorf("CMD's config %s is in none of the volumes %q", conf, volumes)
		}
		if !slices.Contains(volumes, dockerDataDir) {
			t.Errorf("no VOLUME %s for data (volumes: %q)", dockerDataDir, volumes)
		}
		listen, _, ok := flagValue(cmdArgs, "--listen", "-listen")
		if !ok {
			t.Fatalf("CMD %q: no --listen: the config's listen: would apply, 127.0.0.1 by default, unreachable from outside the container", cmdArgs)
		}
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			t.Fatalf("CMD --listen %s: %v", listen, err)
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("CMD --listen %s: a container must listen on every interface", listen)
		}
		var exposed []string
		for _, in := range final.all("EXPOSE") {
			exposed = append(exposed, strings.Fields(in.args)...)
		}
		if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
			t.Errorf("CMD listens on port %s, EXPOSE has %q", port, exposed)
		}
	})

	t.Run("data volume belongs to the user", func(t *testing.T) {
		for _, in := range final.all("COPY") {
			fields := strings.Fields(in.args)
			if fields[len(fields)-1] != dockerDataDir {
				continue
			}
			if in.flags["chown"] != user {
				t.Errorf("Dockerfile:%d: %s is created with --chown=%s, the user is %s: a fresh volume would not be writable",
					in.line, dockerDataDir, in.flags["chown"], user)
			}
			return
		}
		t.Errorf("final stage does not create %s: a fresh volume would be owned by root", dockerDataDir)
	})

	if testing.Short() {
		t.Skip("-short: skips running the build stage (a full go build)")
	}
	ctxDir := buildContext(t, "..")
	out := runBuildStage(t, build, ctxDir)

	// What the final stage copies from the build stage.
	copied := map[string]string{} // destination in the image -> file here
	for _, in := range final.all("COPY") {
		if in.flags["from"] != build.name {
			continue
		}
		fields := strings.Fields(in.args)
		if len(fields) != 2 {
			t.Fatalf("Dockerfile:%d: COPY %s: want one source and one destination", in.line, in.args)
		}
		src := outPrefix.ReplaceAllString(fields[0], "${1}"+out)
		if _, err := os.Stat(src); err != nil {
			t.Errorf("Dockerfile:%d: COPY --from=%s %s: the build stage did not make it", in.line, build.name, fields[0])
		}
		copied[fields[1]] = src
	}
	bin, ok := copied[entrypoint[0]]
	if !ok {
		t.Fatalf("ENTRYPOINT %s is not copied from the build stage", entrypoint[0])
	}

	t.Run("binary is static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s has a %v program header: it needs a dynamic loader the final image lacks", entrypoint[0], p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s links %q", entrypoint[0], libs)
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" {
			t.Errorf("built with CGO_ENABLED=%q, want 0", settings["CGO_ENABLED"])
		}
		if settings["-trimpath"] != "true" {
			t.Errorf("built without -trimpath: the binary carries the builder's paths")
		}
	})

	t.Run("licences of every module in the binary", func(t *testing.T) {
		licences, ok := copied["/usr/share/doc/luahost/licences"]
		if !ok {
			t.Fatal("the final stage does not copy the licences to /usr/share/doc/luahost/licences")
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		dirs := []string{"luahost", "go"}
		for _, m := range info.Deps {
			dirs = append(dirs, m.Path)
		}
		for _, d := range dirs {
			entries, err := os.ReadDir(filepath.Join(licences, d))
			if err != nil || len(entries) == 0 {
				t.Errorf("no licence for %s in the image", d)
			}
		}
		if _, err := os.Stat(filepath.Join(licences, "gopkg.in/yaml.v3/NOTICE")); err != nil {
			t.Errorf("yaml.v3's NOTICE is not in the image: %v", err)
		}
	})

	t.Run("binary accepts the command", func(t *testing.T) {
		// A config that does not exist: serve stops at loading it, before
		// it listens, and says so. A flag it does not know exits 2.
		args := slices.Clone(cmdArgs)
		_, set, _ := flagValue(args, "-c", "--c", "-config", "--config")
		missing := filepath.Join(t.TempDir(), "missing", "luahost.yaml")
		set(missing)
		cmd := exec.Command(bin, args...)
		b, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code != 1 || !strings.Contains(string(b), missing) {
			t.Fatalf("%s %q: exit %d (%v), want 1 with an error naming the config\n%s", entrypoint[0], args, code, err, b)
		}
	})

	t.Run("binary accepts the healthcheck", func(t *testing.T) {
		usage, _ := exec.Command(bin, "-h").Output()
		if !regexp.MustCompile(`(?m)^\s+health\b`).Match(usage) {
			t.Skip("luahost has no health subcommand yet: the HEALTHCHECK line waits for it")
		}
		in, _ := final.last("HEALTHCHECK")
		rest, _ := strings.CutPrefix(in.args, "CMD ")
		argv := execForm(t, instr{line: in.line, cmd: "HEALTHCHECK", args: strings.TrimSpace(rest)})
		// Point it at a loopback port nothing listens on: Docker reads
		// exit 1 as unhealthy, and 2 is reserved.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		args := slices.Clone(argv[1:])
		if _, set, ok := flagValue(args, "--admin", "-admin"); ok {
			set(closed)
		}
		cmd := exec.Command(bin, args...)
		b, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Errorf("%s %q with nothing listening: exit %d, want 1 (unhealthy)\n%s", entrypoint[0], args, code, b)
		}
	})
}
