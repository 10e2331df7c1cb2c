package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secrets outside the YAML (docs/operations.md#secrets). Any string value
// of the config, module configs included, may name an environment
// variable, `${NAME}`, anywhere in the string (`$${` is a literal `${`),
// and a value tagged `!file` is replaced by the content of the file it
// names (one trailing newline dropped), relative to the config file's
// folder; the path may itself use `${NAME}` (systemd's
// ${CREDENTIALS_DIRECTORY}). A tag rather than a `*_path` key convention:
// the tag works for any key of any module without the module knowing,
// and a module's own `..._path` keys keep meaning what they mean. Keys
// are never expanded. Every value read this way counts as secret: the
// engine hides it in logs, errors and Status (redact.go).

// maxSecretFile bounds what a `!file` value reads.
const maxSecretFile = 1 << 20

// fileTag marks a value read from a file.
const fileTag = "!file"

// resolveSecrets returns a copy of the tree under root with `${NAME}`
// and `!file` values resolved, and the values it read. Problems go to
// fail with the value's line; the value is then left as it was.
func resolveSecrets(root *yaml.Node, file string, fail func(*yaml.Node, string, ...any)) (*yaml.Node, []string) {
	root = copyNode(root, map[*yaml.Node]*yaml.Node{})
	var secrets []string
	dir := filepath.Dir(file)
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, false)
			}
		case yaml.MappingNode:
			for i, c := range n.Content {
				walk(c, i%2 == 0)
			}
		case yaml.ScalarNode:
			if isKey {
				return
			}
			switch {
			case n.Tag == fileTag:
				p, vals, err := expandEnv(n.Value)
				if err != nil {
					fail(n, "!file %s: %v", n.Value, err)
					return
				}
				secrets = append(secrets, vals...)
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				b, err := readSecretFile(p)
				if err != nil {
					fail(n, "!file %s: %v", n.Value, err)
					return
				}
				n.Value, n.Tag, n.Style = b, "!!str", yaml.DoubleQuotedStyle
				secrets = append(secrets, b)
			case n.Tag == "!!str" && strings.Contains(n.Value, "${"):
				v, vals, err := expandEnv(n.Value)
				if err != nil {
					fail(n, "%v", err)
					return
				}
				n.Value = v
				secrets = append(secrets, vals...)
			}
		}
		// An alias shares its anchor's node, resolved where it stands.
	}
	walk(root, false)
	return root, secrets
}

// copyNode copies a tree, keeping aliases pointing at the copied anchors
// (the caller's tree, a homeserver's own config, is left untouched).
func copyNode(n *yaml.Node, seen map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := seen[n]; ok {
		return c
	}
	c := *n
	seen[n] = &c
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = copyNode(k, seen)
	}
	c.Alias = copyNode(n.Alias, seen)
	return &c
}

// expandEnv replaces each ${NAME} in s with the environment variable's
// value; $${ is a literal ${. It returns the values it used.
func expandEnv(s string) (string, []string, error) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	var vals []string
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, errors.New("unterminated ${ (write $${ for a literal ${)")
			}
			name := s[i+2 : i+2+end]
			if !validEnvName(name) {
				return "", nil, fmt.Errorf("${%s}: not an environment variable name (letters, digits and _, not starting with a digit)", name)
			}
			v, ok := os.LookupEnv(name)
			if !ok {
				return "", nil, fmt.Errorf("${%s}: environment variable %s is not set", name, name)
			}
			b.WriteString(v)
			vals = append(vals, v)
			i += 2 + end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), vals, nil
}

func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// readSecretFile reads a !file value: at most maxSecretFile bytes, with
// one trailing newline (as `echo` writes) dropped.
func readSecretFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("file %s does not exist", p)
		}
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return "", fmt.Errorf("%s is a folder, not a file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d KiB", p, maxSecretFile>>10)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	return s, nil
}

// redactConfigErrors hides secret values in config error messages (a
// value that fails a check is quoted in its message).
func redactConfigErrors(errs ConfigErrors, secrets []string) ConfigErrors {
	var r redactor
	r.add(secrets)
	for _, e := range errs {
		e.Msg = r.redact(e.Msg)
	}
	return errs
}
