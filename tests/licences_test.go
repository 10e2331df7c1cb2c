package tests

import (
	"bufio"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// docs/licences.md is only worth reading while it matches go.mod: every
// required module is listed at its version, and a module is marked
// "binary" exactly when non-test code compiles it, since that decides
// what a shipped binary must carry.

// goModRequires returns module path -> version from ../go.mod's require
// directives, single-line and block form alike.
func goModRequires(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs := map[string]string{}
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case inBlock && fields[0] == ")":
			inBlock = false
		case inBlock && len(fields) == 2:
			reqs[fields[0]] = fields[1]
		case fields[0] == "require" && len(fields) == 2 && fields[1] == "(":
			inBlock = true
		case fields[0] == "require" && len(fields) == 3:
			reqs[fields[1]] = fields[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(reqs) == 0 {
		t.Fatal("go.mod: no require directives found")
	}
	return reqs
}

type licenceRow struct {
	version, licence, linked string
}

// licenceTable returns the rows of docs/licences.md's dependency table.
func licenceTable(t *testing.T) map[string]licenceRow {
	t.Helper()
	text := readDoc(t, docsDir+"/licences.md")
	rows := map[string]licenceRow{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 5 || cells[0] == "module" {
			continue
		}
		if _, dup := rows[cells[0]]; dup {
			t.Errorf("docs/licences.md: %s listed twice", cells[0])
		}
		rows[cells[0]] = licenceRow{version: cells[1], licence: cells[2], linked: cells[3]}
	}
	return rows
}

func TestLicencesListEveryModule(t *testing.T) {
	reqs := goModRequires(t)
	rows := licenceTable(t)
	for mod, ver := range reqs {
		row, ok := rows[mod]
		switch {
		case !ok:
			t.Errorf("docs/licences.md: %s %s (in go.mod) is not listed; read its licence and add a row", mod, ver)
		case row.version != ver:
			t.Errorf("docs/licences.md: %s is listed at %s, go.mod requires %s; check its licence did not change", mod, row.version, ver)
		case row.licence == "":
			t.Errorf("docs/licences.md: %s has no licence", mod)
		}
	}
	for mod := range rows {
		if _, ok := reqs[mod]; !ok {
			t.Errorf("docs/licences.md: %s is listed but go.mod does not require it", mod)
		}
	}
}

func TestLicencesBinaryColumn(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips running go list over the module")
	}
	// Modules that non-test code compiles: what a luahost binary or a
	// homeserver embedding the engine contains.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	linked := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		linked[m] = true
	}
	rows := licenceTable(t)
	var names []string
	for mod := range rows {
		names = append(names, mod)
	}
	sort.Strings(names)
	for _, mod := range names {
		marked := strings.HasPrefix(rows[mod].linked, "binary")
		if linked[mod] != marked {
			t.Errorf("docs/licences.md: %s is marked %q, but non-test code compiling it is %v", mod, rows[mod].linked, linked[mod])
		}
	}
}
