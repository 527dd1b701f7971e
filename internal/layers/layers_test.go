// Package layers_test checks the import rules of the architecture (DESIGN.md
// section 3): which of the project's packages each layer may import, and the
// libraries a layer must never import. `make lint` runs it.
package layers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/evchat/evchat/"

// rule is what one layer may import.
type rule struct {
	// layer is a package path relative to the module; it covers the
	// packages below it too.
	layer string
	// mayImport lists the project's packages (and those below them) the
	// layer may import; nil: any. The layer's own packages are always
	// allowed.
	mayImport []string
	// never lists import path prefixes the layer must not import, the
	// project's or libraries.
	never []string
	// stdlibOnly: no import outside the standard library and the allowed
	// project packages.
	stdlibOnly bool
	// allowLibs are import path prefixes of libraries a stdlibOnly layer
	// may import all the same.
	allowLibs []string
}

var pgx = "github.com/jackc/pgx"

// prom is the metrics library: only internal/metrics (and the composition
// root) import it; the layers it observes offer hooks instead.
var prom = "github.com/prometheus"

// rules are DESIGN.md section 3. The binaries and internal/chatd (the
// composition root) may import everything and have no rule.
var rules = []rule{
	// golang.org/x/text: usernames are compared in NFKC and case-folded;
	// github.com/rivo/uniseg: a reaction is one grapheme cluster.
	{layer: "domain", mayImport: []string{"internal/jsonscan"}, stdlibOnly: true, allowLibs: []string{"golang.org/x/text/", "github.com/rivo/uniseg"}},
	{layer: "commands", mayImport: []string{"domain", "eventstore!"}, never: []string{pgx, "github.com/labstack", "github.com/gorilla", prom}},
	{layer: "eventstore", mayImport: []string{"eventstore", "internal/wait", "internal/pgerr"}, never: []string{module + "domain", prom}},
	{layer: "postgres", mayImport: []string{"commands", "auth", "domain", "eventstore!", "history", "postgres", "shred", "internal/wait"}, never: []string{prom}},
	// The shredder decorates the event-store port; its keys are behind a port.
	{layer: "shred", mayImport: []string{"domain", "eventstore!", "internal/jsonscan"}, never: []string{pgx, prom}},
	{layer: "projections", mayImport: []string{"domain", "readmodel", "eventstore!", "migrations", "internal/wait"}, never: []string{prom}},
	{layer: "readmodel", mayImport: []string{"domain", "eventstore!"}, never: []string{prom}},
	// Time travel reads the log through ports; its answers are the read
	// model's types.
	{layer: "history", mayImport: []string{"domain", "eventstore!", "readmodel"}, never: []string{pgx, prom}},
	{layer: "realtime", mayImport: []string{"domain", "eventstore!", "readmodel", "internal/wait"},
		never: []string{"github.com/labstack/echo", "github.com/gorilla/websocket", pgx, prom}},
	{layer: "auth", mayImport: []string{"domain"}, never: []string{pgx, "github.com/labstack", "github.com/gorilla", prom}},
	{layer: "http", mayImport: []string{"commands", "history", "readmodel", "realtime", "auth", "domain", "eventstore!", "web", "internal/ratelimit"},
		never: []string{pgx, prom}},
	{layer: "web", mayImport: []string{}},
	{layer: "migrations", mayImport: []string{}},
	{layer: "internal/wait", mayImport: []string{}, stdlibOnly: true},
	{layer: "internal/jsonscan", mayImport: []string{}, stdlibOnly: true},
	{layer: "internal/proccpu", mayImport: []string{}, stdlibOnly: true},
	{layer: "internal/clocktest", mayImport: []string{}, stdlibOnly: true},
	{layer: "internal/ratelimit", mayImport: []string{}, stdlibOnly: true},
	{layer: "internal/metrics", mayImport: []string{"domain", "eventstore!"}, never: []string{pgx}},
}

// pending are the imports the redesign has not removed yet. Each entry
// must still occur (TestLayers fails when one is gone, so the list only
// shrinks), and only these exact imports are excused.
var pending = []string{}

type pkg struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// covers reports whether the project package rel is layer or below it; a
// layer written "x!" covers x alone, not the packages below it.
func covers(layer, rel string) bool {
	if l, ok := strings.CutSuffix(layer, "!"); ok {
		return rel == l
	}
	return rel == layer || strings.HasPrefix(rel, layer+"/")
}

// violations returns every import of pkgs that breaks rules.
func violations(pkgs []pkg, std func(string) bool) []string {
	var out []string
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		for _, r := range rules {
			if !covers(r.layer, rel) {
				continue
			}
			for _, imp := range p.Imports {
				impRel, own := strings.CutPrefix(imp, module)
				bad := ""
				for _, n := range r.never {
					if strings.HasPrefix(imp, n) {
						bad = "never " + n
					}
				}
				switch {
				case bad != "":
				case own && r.mayImport != nil && !covers(r.layer, impRel) &&
					!slices.ContainsFunc(r.mayImport, func(l string) bool { return covers(l, impRel) }):
					bad = "may import only " + strings.Join(r.mayImport, ", ")
				case !own && r.stdlibOnly && !std(imp) &&
					!slices.ContainsFunc(r.allowLibs, func(l string) bool { return strings.HasPrefix(imp, l) }):
					bad = "standard library only"
				}
				if bad != "" {
					out = append(out, fmt.Sprintf("%s imports %s (%s: %s)", rel, imp, r.layer, bad))
				}
			}
		}
	}
	return out
}

func TestLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", "-deps=false", "../../...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; want the whole module", len(pkgs))
	}
	std := func(path string) bool {
		first, _, _ := strings.Cut(path, "/")
		return !strings.Contains(first, ".")
	}
	seen := map[string]bool{}
	for _, v := range violations(pkgs, std) {
		excused := false
		for _, p := range pending {
			if strings.HasPrefix(v, p+" (") {
				excused, seen[p] = true, true
			}
		}
		if !excused {
			t.Error(v)
		}
	}
	for _, p := range pending {
		if !seen[p] {
			t.Errorf("%q no longer happens: remove it from pending", p)
		}
	}
}

// The check itself must catch what it is there for.
func TestLayersCatchForbiddenImports(t *testing.T) {
	std := func(path string) bool { return !strings.Contains(path, ".") }
	cases := []struct {
		pkg  pkg
		want bool
	}{
		{pkg{ImportPath: module + "domain", Imports: []string{"errors", "fmt"}}, false},
		{pkg{ImportPath: module + "domain", Imports: []string{"github.com/google/uuid"}}, true},
		{pkg{ImportPath: module + "domain", Imports: []string{"golang.org/x/text/unicode/norm"}}, false},
		{pkg{ImportPath: module + "http", Imports: []string{"github.com/jackc/pgx/v5/pgxpool"}}, true},
		{pkg{ImportPath: module + "http", Imports: []string{module + "commands", module + "realtime"}}, false},
		{pkg{ImportPath: module + "http", Imports: []string{module + "projections"}}, true},
		{pkg{ImportPath: module + "http", Imports: []string{module + "eventstore/postgres"}}, true},
		{pkg{ImportPath: module + "readmodel", Imports: []string{module + "commands"}}, true},
		{pkg{ImportPath: module + "eventstore/postgres", Imports: []string{module + "domain"}}, true},
		{pkg{ImportPath: module + "realtime", Imports: []string{"github.com/gorilla/websocket"}}, true},
		{pkg{ImportPath: module + "cmd/chatd", Imports: []string{"github.com/jackc/pgx/v5", module + "http"}}, false},
	}
	for _, c := range cases {
		got := len(violations([]pkg{c.pkg}, std)) > 0
		if got != c.want {
			t.Errorf("%s importing %v: violation %v; want %v", c.pkg.ImportPath, c.pkg.Imports, got, c.want)
		}
	}
}
