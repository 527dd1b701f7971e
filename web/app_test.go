package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestAppServesPageAndAssets(t *testing.T) {
	h := App()
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/app/app.js", "text/javascript; charset=utf-8"},
		{"/app/app.css", "text/css; charset=utf-8"},
		{"/app/icon.svg", "image/svg+xml"},
	} {
		w := get(t, h, c.path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d", c.path, w.Code)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", c.path, got)
		}
		if got := w.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", c.path, got)
		}
	}
	if csp := get(t, h, "/").Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the page's Content-Security-Policy is %q", csp)
	}
}

func TestAppRefusesOtherPaths(t *testing.T) {
	h := App()
	for _, p := range []string{"/app/", "/app/index.html", "/app/nope.js", "/index.html", "/list-chatrooms/", "/app"} {
		if w := get(t, h, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

// Every module a script imports and every file the page names is embedded:
// a missing one would only show in a browser.
func TestAppReferencesResolve(t *testing.T) {
	sub, err := fs.Sub(appFiles, "app")
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]string{}
	imports := regexp.MustCompile(`from "\./([^"]+)"`)
	assets := regexp.MustCompile(`(?:src|href)="/app/([^"]+)"`)
	err = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, path)
		if err != nil {
			return err
		}
		for _, re := range []*regexp.Regexp{imports, assets} {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				refs[m[1]] = path
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) < 5 {
		t.Fatalf("found only %d references: %v", len(refs), refs)
	}
	for ref, from := range refs {
		if _, err := fs.Stat(sub, ref); err != nil {
			t.Errorf("%s names %s, which is not embedded", from, ref)
		}
	}
}
