// Package web holds what chatd serves to browsers.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// appFiles is the web chat client: plain HTML, CSS and JavaScript modules,
// served as they are (no build step).
//
//go:embed app
var appFiles embed.FS

// AppPrefix is the path under which the client's assets are served.
const AppPrefix = "/app/"

// App serves the web chat client: its page at "/" and its assets under
// AppPrefix. Any other path is 404, so that it can sit beside the API.
func App() http.Handler {
	sub, err := fs.Sub(appFiles, "app")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix(AppPrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The type of every asset is set from its name: a browser must never
		// guess one (a message text is not a script).
		h.Set("X-Content-Type-Options", "nosniff")
		switch {
		case r.URL.Path == "/":
			// The page names its assets without a version, so neither may
			// be kept stale: the browser revalidates (Last-Modified is the
			// build's, so an unchanged binary answers 304).
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", contentSecurityPolicy)
			h.Set("Referrer-Policy", "same-origin")
			http.ServeFileFS(w, r, sub, "index.html")
		case strings.HasPrefix(r.URL.Path, AppPrefix) && servable(r.URL.Path):
			h.Set("Cache-Control", "no-cache")
			assets.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// servable refuses directory listings and the page itself under the prefix.
func servable(p string) bool {
	name := path.Base(p)
	return !strings.HasSuffix(p, "/") && name != "index.html"
}

// contentSecurityPolicy allows the page only its own scripts and styles,
// attachments as blob: URLs (fetched with the access token), and
// connections to its own origin (REST and the WebSocket).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
