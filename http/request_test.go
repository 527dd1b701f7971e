package http

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
)

func TestReadJSONContentTypes(t *testing.T) {
	t.Parallel()
	e := echo.New()
	for _, c := range []struct {
		ct   string
		kind domain.Kind // KindInternal: accepted
	}{
		{"", domain.KindInternal},
		{"application/json", domain.KindInternal},
		{"Application/JSON; charset=utf-8", domain.KindInternal},
		{"application/jsonx", domain.KindUnsupported},
		{"application/json-patch+json", domain.KindUnsupported},
		{"text/plain", domain.KindUnsupported},
		{"application/json; charset", domain.KindUnsupported}, // malformed
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"a": 1}`))
		if c.ct != "" {
			req.Header.Set(echo.HeaderContentType, c.ct)
		}
		b, err := readJSON(e.NewContext(req, httptest.NewRecorder()))
		if c.kind == domain.KindInternal {
			if err != nil || b["a"] == nil {
				t.Errorf("Content-Type %q: %v, %v; want the body read", c.ct, b, err)
			}
			continue
		}
		if domain.KindOf(err) != c.kind {
			t.Errorf("Content-Type %q: error %v (kind %d); want kind %d (415)", c.ct, err, domain.KindOf(err), c.kind)
		}
	}
}
