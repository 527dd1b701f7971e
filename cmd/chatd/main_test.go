package main

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestHelpListsTheEnvironment(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-h"}, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("chatd -h = %v; want flag.ErrHelp (exit 0)", err)
	}
	for _, want := range []string{"-addr", "-version", "-healthcheck", "DATABASE_URL", "CHAT_LOG_FORMAT", "EVENTSTORE_URL", "CHAT_RATE_SEND", "CHAT_MAX_FORM_PARTS"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("chatd -h does not mention %s:\n%s", want, errOut.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"-version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "chatd ") {
		t.Errorf("chatd -version = %v, stdout %q; want nil and a line starting with \"chatd \"", err, out.String())
	}
}

func TestBadFlagsAreErrors(t *testing.T) {
	for _, args := range [][]string{{"-log-format", "xml"}, {"-log-level", "loud"}, {"stray"}, {"-rate-send", "fast"}} {
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("chatd %v = nil; want an error", args)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	status := http.StatusOK
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	var out, errOut bytes.Buffer
	if err := run([]string{"-healthcheck", "-addr", "0.0.0.0:" + port}, &out, &errOut); err != nil {
		t.Errorf("healthcheck of a healthy server on a wildcard address = %v; want nil", err)
	}
	status = http.StatusServiceUnavailable
	if err := run([]string{"-healthcheck", "-addr", "127.0.0.1:" + port}, &out, &errOut); err == nil {
		t.Error("healthcheck of a server answering 503 = nil; want an error")
	}
	srv.Close()
	if err := run([]string{"-healthcheck", "-addr", "127.0.0.1:" + port}, &out, &errOut); err == nil {
		t.Error("healthcheck with no server = nil; want an error")
	}
}
