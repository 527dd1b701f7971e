package http

import (
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/evchat/evchat/web"
)

// routeParam matches a path parameter in echo (":id", "*") or OpenAPI
// ("{id}") spelling.
var routeParam = regexp.MustCompile(`:[a-z_]+|\{[a-z_]+\}|\*`)

// routeKey is a route as "METHOD /path" with parameters unnamed and the
// trailing slash dropped: every path is served with and without it.
func routeKey(method, p string) string {
	p = routeParam.ReplaceAllString(p, "{}")
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	return method + " " + p
}

// TestOpenAPICoversRoutes fails when a route registered on the server is
// missing from the OpenAPI document, or the document names a route the
// server does not have.
func TestOpenAPICoversRoutes(t *testing.T) {
	// routes only takes the handlers' method values, so a bare Server
	// suffices to list them.
	s := &Server{log: slog.Default()}
	served := map[string]bool{}
	for _, r := range s.routes().Routes() {
		served[routeKey(r.Method, r.Path)] = true
	}
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[routeKey(method, p)] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes served but missing from web/openapi.yaml:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("routes in web/openapi.yaml that the server does not have:\n  %s", strings.Join(extra, "\n  "))
	}
	if len(served) < 20 {
		t.Errorf("only %d routes found on the server; the test no longer sees them", len(served))
	}
}
