package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// body is a JSON object body, field by field. Unknown fields are ignored;
// each accessor returns a DRF-shaped field error for a bad value.
type body map[string]json.RawMessage

// readJSON reads a JSON object body. An empty body is an empty object.
func readJSON(c echo.Context) (body, error) {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		var mbe *http.MaxBytesError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge || errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		if errors.As(err, &he) && he.Code == http.StatusRequestTimeout {
			return nil, he
		}
		return nil, domain.Errorf(domain.KindInvalid, "Could not read the request body.")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return body{}, nil
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" && !isJSON(ct) {
		return nil, domain.Errorf(domain.KindUnsupported, "Unsupported media type \"%s\" in request.", c.Request().Header.Get(echo.HeaderContentType))
	}
	var b body
	if err := json.Unmarshal(raw, &b); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, domain.Errorf(domain.KindInvalid, "Invalid data. Expected a dictionary, but got %s.", te.Value)
		}
		return nil, domain.Errorf(domain.KindInvalid, "JSON parse error - %s", err.Error())
	}
	if b == nil {
		b = body{}
	}
	return b, nil
}

// isJSON reports whether the Content-Type ct is application/json, with
// parameters or none ("application/jsonx" is not).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == echo.MIMEApplicationJSON
}

// first returns the first of the names that is present (for aliases).
func (b body) first(names ...string) string {
	for _, n := range names {
		if _, ok := b[n]; ok {
			return n
		}
	}
	return names[0]
}

// id reads a required integer id; a numeric string is accepted too, as
// form-style clients send them.
func (b body) id(field string) (int64, error) {
	raw, ok := b[field]
	if !ok {
		return 0, domain.FieldError(field, "This field is required.")
	}
	if string(raw) == "null" {
		return 0, domain.FieldError(field, "This field may not be null.")
	}
	v, ok := parseInt(raw)
	if !ok {
		return 0, domain.FieldError(field, "A valid integer is required.")
	}
	return v, nil
}

func parseInt(raw json.RawMessage) (int64, bool) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ids reads a list of integer ids. Absent: nil, false.
func (b body) ids(field string) ([]int64, bool, error) {
	raw, ok := b[field]
	if !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, true, domain.FieldError(field, "Expected a list of items.")
	}
	out := make([]int64, 0, len(items))
	for _, it := range items {
		v, ok := parseInt(it)
		if !ok {
			return nil, true, domain.FieldError(field, "A valid integer is required.")
		}
		out = append(out, v)
	}
	return out, true, nil
}

// str reads a string field. Absent or null: nil.
func (b body) str(field string) (*string, error) {
	raw, ok := b[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, domain.FieldError(field, "Not a valid string.")
	}
	return &s, nil
}

// requiredStrings reads required non-blank string fields, collecting every
// problem into one field error.
func (b body) requiredStrings(fields ...string) ([]string, error) {
	out := make([]string, len(fields))
	problems := map[string][]string{}
	for i, f := range fields {
		raw, ok := b[f]
		switch {
		case !ok:
			problems[f] = []string{"This field is required."}
			continue
		case string(raw) == "null":
			problems[f] = []string{"This field may not be null."}
			continue
		}
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			problems[f] = []string{"Not a valid string."}
		} else if strings.TrimSpace(out[i]) == "" {
			problems[f] = []string{"This field may not be blank."}
		}
	}
	if len(problems) > 0 {
		return nil, &domain.Error{Kind: domain.KindInvalid, Fields: problems}
	}
	return out, nil
}

// pathID parses the :id path parameter; anything but a positive integer is
// a missing resource.
func pathID(c echo.Context, notFound error) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound
	}
	return id, nil
}

// maxPageLimit is the largest page a list returns; a larger limit is
// clamped to it.
const maxPageLimit = 200

// page reads the keyset pagination parameters. after=0 pages forward from
// the start.
func page(c echo.Context) (p readmodel.Page, err error) {
	limit := 50
	q := c.QueryParams()
	num := func(name string) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, domain.FieldError(name, "A valid positive integer is required.")
		}
		return n, nil
	}
	if p.Before, err = num("before"); err != nil {
		return
	}
	if p.Before == 0 && q.Get("before") != "" {
		// Ids start at 1: nothing lies before 0.
		return readmodel.Page{}, domain.FieldError("before", "A valid positive integer is required.")
	}
	if p.After, err = num("after"); err != nil {
		return
	}
	p.Forward = q.Get("after") != ""
	if p.Before > 0 && p.Forward {
		return readmodel.Page{}, domain.Errorf(domain.KindInvalid, "Use either before or after, not both.")
	}
	l, err := num("limit")
	if err != nil {
		return
	}
	if q.Get("limit") != "" && l == 0 {
		return readmodel.Page{}, domain.FieldError("limit", "Ensure this value is greater than or equal to 1.")
	}
	if l > 0 {
		limit = int(min(l, maxPageLimit))
	}
	p.Limit = limit
	return p, nil
}

// linkHeader builds an RFC 8288 Link header for the prev/next pages (nil:
// none).
func linkHeader(c echo.Context, base string, prev, next *readmodel.Page, asOf string) string {
	var links []string
	u := base + c.Request().URL.Path
	extra := ""
	if asOf != "" {
		// A page of the past links to the pages of the same moment.
		extra = "&as_of=" + url.QueryEscape(asOf)
	}
	for _, l := range []struct {
		p   *readmodel.Page
		rel string
	}{{prev, "prev"}, {next, "next"}} {
		switch {
		case l.p == nil:
		case l.p.Before > 0:
			links = append(links, fmt.Sprintf(`<%s?before=%d&limit=%d%s>; rel="%s"`, u, l.p.Before, l.p.Limit, extra, l.rel))
		case l.p.After > 0 || l.p.Forward:
			links = append(links, fmt.Sprintf(`<%s?after=%d&limit=%d%s>; rel="%s"`, u, l.p.After, l.p.Limit, extra, l.rel))
		default: // the newest page
			links = append(links, fmt.Sprintf(`<%s?limit=%d%s>; rel="%s"`, u, l.p.Limit, extra, l.rel))
		}
	}
	return strings.Join(links, ", ")
}
