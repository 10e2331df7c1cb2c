package luaapi

import "strings"

// ReferenceTable renders one category of the catalogue as the Markdown
// table that docs/callbacks/<category>.md carries between its
// `<!-- catalogue:begin -->` and `<!-- catalogue:end -->` markers. The docs
// test compares the two, so a catalogue change that is not reflected in the
// docs fails CI (run the test with UPDATE_DOCS=1 to rewrite the pages).
//
// It returns "" for an unknown category.
func ReferenceTable(category string) string {
	var cat *Category
	for _, c := range Catalogue {
		if c.Name == category {
			cat = c
		}
	}
	if cat == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("| callback | arguments (name: kind) | returns | combine | on error |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, cb := range cat.Callbacks {
		args := make([]string, len(cb.Args))
		for i, a := range cb.Args {
			args[i] = "`" + a.Name + ": " + string(a.Kind) + "`"
		}
		argCell := strings.Join(args, ", ")
		if argCell == "" {
			argCell = "none"
		}
		cells := []string{
			"[`" + cb.Name + "`](#" + anchor(cb.Name) + ")",
			argCell,
			cb.Returns,
			cb.CombineText(),
			string(cb.OnError),
		}
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + tableCell(c) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// anchor is the heading anchor GitHub and most renderers give a
// `### name` title made of lower-case letters, digits and underscores.
func anchor(title string) string { return strings.ToLower(title) }

// tableCell keeps a value from breaking the table row.
func tableCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
