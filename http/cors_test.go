package http

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	const allowed, stranger = "https://app.example", "https://evil.example"
	h := (&Server{log: slog.Default(), cfg: Config{CORSOrigins: []string{allowed}}}).routes()
	off := (&Server{log: slog.Default()}).routes()

	preflight := func(h http.Handler, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, "/send-message/", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, idempotency-key")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	simple := func(h http.Handler, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/healthz/", nil)
		req.Header.Set("Origin", origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("a listed origin's preflight", func(t *testing.T) {
		rec := preflight(h, allowed)
		got := rec.Header()
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin":  allowed,
			"Access-Control-Allow-Methods": "GET,HEAD,POST,PUT,PATCH,DELETE",
			"Access-Control-Allow-Headers": "Authorization,Content-Type,Idempotency-Key,X-Request-Id,X-Chat-Position",
			"Access-Control-Max-Age":       "600",
		} {
			if got.Get(k) != want {
				t.Errorf("%s = %q; want %q", k, got.Get(k), want)
			}
		}
		if rec.Code != http.StatusNoContent || got.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("status %d, Allow-Credentials %q; want 204 and none", rec.Code, got.Get("Access-Control-Allow-Credentials"))
		}
	})

	t.Run("a listed origin's request exposes the headers clients read", func(t *testing.T) {
		rec := simple(h, allowed)
		if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != allowed ||
			rec.Header().Get("Access-Control-Expose-Headers") != "Link,Retry-After,X-Request-Id,X-Chat-Position" {
			t.Errorf("status %d, headers %v; want 200 with Allow-Origin %s and Link, Retry-After, X-Request-Id, X-Chat-Position exposed", rec.Code, rec.Header(), allowed)
		}
	})

	for name, rec := range map[string]*httptest.ResponseRecorder{
		"an unlisted origin's preflight": preflight(h, stranger),
		"an unlisted origin's request":   simple(h, stranger),
		"CORS off: preflight":            preflight(off, allowed),
		"CORS off: request":              simple(off, allowed),
	} {
		t.Run(name, func(t *testing.T) {
			for k := range rec.Header() {
				if len(k) > 14 && k[:14] == "Access-Control" {
					t.Errorf("header %s: %q; want no CORS header", k, rec.Header().Get(k))
				}
			}
		})
	}
}
