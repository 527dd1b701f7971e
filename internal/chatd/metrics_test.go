package chatd_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/evchat/evchat/internal/chatd"
)

// series is a scrape: each sample line's name with labels, as written, and
// its value.
type series map[string]float64

func parseSeries(t testing.TB, body []byte) series {
	t.Helper()
	out := series{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds the samples of name whose labels hold every one of labels
// (written as in the exposition: route="/x/").
func (s series) sum(name string, labels ...string) (total float64, found bool) {
	for k, v := range s {
		n, ls, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(ls, l)
		}
		if ok {
			total, found = total+v, true
		}
	}
	return total, found
}

// TestMetricsScrape: after a registration and a message, /metrics holds
// non-zero request, command, append and projection series, by route
// template and not by raw path, and the runtime collectors.
func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	a := s.newUser()
	room := s.room(a)
	s.send(a, room, "hello")
	if r := s.do("GET", "/list-conversation-messages/"+strconv.FormatInt(room, 10)+"/", a.Access, nil); r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	r := s.do("GET", "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics = %d; want 200", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q; want text/plain", ct)
	}
	got := parseSeries(t, r.Body)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"evchat_http_requests_total", []string{`method="POST"`, `route="/auth/register/"`, `status="201"`}},
		{"evchat_http_requests_total", []string{`route="/send-message/"`, `status="201"`}},
		{"evchat_http_requests_total", []string{`route="/list-conversation-messages/:id/"`, `status="200"`}},
		{"evchat_http_request_duration_seconds_count", []string{`route="/send-message/"`}},
		{"evchat_commands_total", []string{`command="register"`, `result="ok"`}},
		{"evchat_commands_total", []string{`command="send_message"`, `result="ok"`}},
		{"evchat_eventstore_appends_total", []string{`result="ok"`}},
		{"evchat_eventstore_append_duration_seconds_count", []string{`result="ok"`}},
		{"evchat_eventstore_append_batch_size_count", nil},
		{"evchat_projection_events_total", []string{`projection="chat"`}},
		{"evchat_projection_lag_up", []string{`projection="chat"`}},
		{"go_goroutines", nil},
	} {
		if v, ok := got.sum(c.name, c.labels...); !ok || v <= 0 {
			t.Errorf("%s%v = %v (found %v); want > 0", c.name, c.labels, v, ok)
		}
	}
	for _, name := range []string{"evchat_projection_lag_events", "evchat_projection_lag_seconds", "evchat_websocket_open"} {
		if _, ok := got.sum(name); !ok {
			t.Errorf("%s missing from the scrape", name)
		}
	}
	// The raw path never becomes a label.
	if _, ok := got.sum("evchat_http_requests_total", `route="/list-conversation-messages/`+strconv.FormatInt(room, 10)); ok {
		t.Errorf("a raw path is a route label:\n%s", r.Body)
	}
}

// TestMetricsOwnAddress: with a metrics address, only it serves /metrics;
// the API's address answers 404.
func TestMetricsOwnAddress(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *chatd.Config) { c.MetricsAddr = "127.0.0.1:0" })
	if r := s.do("GET", "/metrics", "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET /metrics on the API's address = %d; want 404", r.Status)
	}
	if s.MetricsAddr() == "" {
		t.Fatal("MetricsAddr is empty; want the metrics listener's address")
	}
	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on the metrics address = %d; want 200", resp.StatusCode)
	}
	if v, ok := parseSeries(t, body).sum("evchat_http_requests_total", `route="/metrics/"`, `status="404"`); !ok || v != 1 {
		t.Errorf("the API's 404 on /metrics counted %v (found %v); want 1", v, ok)
	}
}
