package chatd_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/evchat/evchat/web"
)

// specChecked wraps the end-to-end suite's HTTP clients: every request they
// send and every answer they get is validated against web/openapi.yaml, so
// the document stays true to what the server does. A mismatch is returned
// as the request's error, which fails the test that sent it with the
// route, the status and the validator's message.
//
// A request the document itself rejects (a test sending a malformed body on
// purpose) must get a documented 4xx answer; its answer is still checked.
var specChecked http.RoundTripper = &specTransport{next: http.DefaultTransport}

type specTransport struct{ next http.RoundTripper }

var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	// Files of any type come back from /media/ and /docs/: only their
	// presence is checked, not their bytes.
	for _, ct := range []string{"image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4",
		"video/webm", "video/quicktime", "application/octet-stream", "text/plain; charset=utf-8",
		"text/html", "text/html; charset=utf-8", "text/css; charset=utf-8", "text/javascript; charset=utf-8"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
	return gorillamux.NewRouter(doc)
})

var specOptions = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	// The tests send tokens of every kind on purpose; the server decides.
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
}

func (s *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	router, err := specRouter()
	if err != nil {
		return nil, err
	}
	var reqBody []byte
	if req.Body != nil {
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err := s.check(router, req, reqBody, resp, respBody); err != nil {
		return nil, fmt.Errorf("OpenAPI mismatch: %s %s -> %d: %w", req.Method, req.URL.RequestURI(), resp.StatusCode, err)
	}
	return resp, nil
}

func (s *specTransport) check(router routers.Router, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	// The server serves every path with and without its trailing slash.
	route, params, err := s.find(router, req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return nil // a path or method the API does not have, refused as documented
		}
		return fmt.Errorf("no such route in the document: %w", err)
	}
	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: specOptions}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode >= 500) {
		return fmt.Errorf("request does not match the document but was answered %d: %w", resp.StatusCode, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Options: specOptions}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

func (s *specTransport) find(router routers.Router, req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := router.FindRoute(req)
	if err == nil {
		return route, params, nil
	}
	alt := req.Clone(context.Background())
	if p := alt.URL.Path; strings.HasSuffix(p, "/") {
		alt.URL.Path = strings.TrimSuffix(p, "/")
	} else {
		alt.URL.Path = p + "/"
	}
	if route, params, err2 := router.FindRoute(alt); err2 == nil {
		return route, params, nil
	}
	return nil, nil, err
}

// TestAPIReference checks the document and the reference page are served
// from the binary, and that the page's assets are there (no CDN).
func TestAPIReference(t *testing.T) {
	s := startServer(t)
	j := s.do("GET", "/openapi.json", "", nil)
	if j.Status != http.StatusOK || j.Map(t)["openapi"] != "3.1.0" {
		t.Fatalf("GET /openapi.json: %d %.200s", j.Status, j.Body)
	}
	if y := s.do("GET", "/openapi.yaml", "", nil); y.Status != http.StatusOK || !bytes.Equal(y.Body, web.OpenAPIYAML) {
		t.Fatalf("GET /openapi.yaml: %d", y.Status)
	}
	page := s.do("GET", "/docs/", "", nil)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "swagger-ui-bundle.js") {
		t.Fatalf("GET /docs/: %d %.200s", page.Status, page.Body)
	}
	for _, a := range []string{"swagger-ui-bundle.js", "swagger-ui.css", "init.js"} {
		if r := s.do("GET", "/docs/"+a, "", nil); r.Status != http.StatusOK || len(r.Body) == 0 {
			t.Errorf("GET /docs/%s: %d", a, r.Status)
		}
	}
	if r := s.do("GET", "/docs/nothing.js", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("GET /docs/nothing.js: %d, want 404", r.Status)
	}
}
