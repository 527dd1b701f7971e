package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestParseMetadata(t *testing.T) {
	at := time.Date(2026, 12, 6, 18, 22, 9, 149350367, time.UTC)
	written, err := json.Marshal(Metadata{ActorID: 7, RequestID: "r-1", CorrelationID: "c", CausationID: "d", Time: at, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		string(written),
		// as PostgreSQL's jsonb writes it back: spaced, keys reordered
		`{"v": 2, "time": "2026-12-06T18:22:09.149350367Z", "actor_id": 7, "request_id": "r-1", "causation_id": "d", "correlation_id": "c"}`,
		`{}`, ` { "time" : "2026-12-06T18:22:09Z" } `, `{"actor_id": -3}`,
		// the slow path's: escapes, other keys, other cases, null, repeats, bad JSON
		`{"request_id": "a\"b"}`, `{"other": 1, "v": 3}`, `{"Time": "2026-12-06T18:22:09Z"}`, `{"request_id": null}`,
		`{"v": 1, "v": 2}`, `{"v": 1.5}`, `{"v": 1e2}`, `{"time": "yesterday"}`, `{"v": 01}`, `{"v": 1,}`, `{"v": 1} x`, ``, `[]`,
		`{"time": "2026-12-06T18:22:09.1+01:00"}`, `{"actor_id": 99999999999999999999}`, `{"request_id": "é"}`,
	} {
		var want Metadata
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := ParseMetadata([]byte(in))
		if (err != nil) != (wantErr != nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("ParseMetadata(%q) = %+v, %v; json.Unmarshal: %+v, %v", in, got, err, want, wantErr)
		}
	}
	if _, fast := scanMetadata(written); !fast {
		t.Errorf("the metadata the log is written with took the slow path: %s", written)
	}
}

// FuzzParseMetadata checks the fast path against json.Unmarshal: whenever
// it answers, it answers the same.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`{"v": 2, "time": "2026-12-06T18:22:09.149350367Z", "actor_id": 7, "request_id": "r-1"}`))
	f.Add([]byte(`{"actor_id":1,"time":"2026-12-06T18:22:09Z"}`))
	f.Add([]byte(`{"correlation_id": "x", "causation_id": "y"}`))
	f.Add([]byte(`{"actor_id": "x", "actor_id": 3}`)) // json.Unmarshal decodes (and refuses) the first too
	f.Fuzz(func(t *testing.T, b []byte) {
		got, fast := scanMetadata(b)
		if !fast {
			return
		}
		var want Metadata
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, which json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast path %+v; json.Unmarshal %+v", b, got, want)
		}
	})
}
