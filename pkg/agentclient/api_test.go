package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type seen struct {
	method, path, query, auth string
	body                      map[string]any
}

func fakeAgent(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.method, s.path, s.query, s.auth = r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			_ = json.Unmarshal(b, &s.body)
		}
		w.Header().Set("Content-Type", "application/json")
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(w http.ResponseWriter, r *http.Request)
		wantBody  string
		wantFault Fault
		wantErr   string
	}{
		{name: "answered", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"apiVersion":"v1"}`)) },
			wantBody: `{"apiVersion":"v1"}`},
		{name: "exactly 1 MiB is accepted", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, MaxAnswer)) },
			wantBody: string(make([]byte, MaxAnswer))},
		{name: "over 1 MiB is refused", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, MaxAnswer+1)) },
			wantFault: FaultAgent, wantErr: "answer larger than 1 MiB refused"},
		{name: "500 with the agent's message", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"disk full"}}`))
		}, wantFault: FaultAgent, wantErr: "HTTP 500 Internal Server Error: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, s := fakeAgent(t, tt.handler)
			ans, err := New(nil).Status(context.Background(), Agent{Name: "a", URL: srv.URL, ReadToken: "r", ControlToken: "c"})
			if s.path != "/v1/status" || s.auth != "Bearer r" {
				t.Errorf("request %s with %q", s.path, s.auth)
			}
			if tt.wantErr == "" {
				if err != nil || string(ans.Body) != tt.wantBody || ans.RTT <= 0 {
					t.Fatalf("Status = %d bytes, %v", len(ans.Body), err)
				}
				return
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Fault != tt.wantFault || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want fault %s with %q", err, tt.wantFault, tt.wantErr)
			}
			if tt.name == "over 1 MiB is refused" && !errors.Is(err, ErrTooLarge) {
				t.Error("not ErrTooLarge")
			}
		})
	}
}

func TestRestartAndStop(t *testing.T) {
	gen := int64(4)
	req := ControlRequest{IfGeneration: &gen, Reason: "crashed where expected", RequestedBy: "auto"}

	t.Run("restart sends the control token and the body", func(t *testing.T) {
		srv, s := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(202)
			_, _ = w.Write([]byte(`{"generation":5,"pid":123,"startedAt":"2026-11-26T04:23:58.477Z"}`))
		})
		res, err := New(nil).Restart(context.Background(), Agent{Name: "a", URL: srv.URL, ReadToken: "r", ControlToken: "c"}, "cdp", req)
		if err != nil || res.Generation != 5 || res.PID == nil || *res.PID != 123 || res.StartedAt == nil {
			t.Fatalf("Restart = %+v, %v", res, err)
		}
		if s.method != "POST" || s.path != "/v1/processes/cdp/restart" || s.auth != "Bearer c" {
			t.Errorf("request %s %s with %q", s.method, s.path, s.auth)
		}
		if s.body["ifGeneration"] != float64(4) || s.body["reason"] != "crashed where expected" || s.body["requestedBy"] != "auto" {
			t.Errorf("body = %v", s.body)
		}
	})
	t.Run("stop", func(t *testing.T) {
		srv, s := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(202)
			_, _ = w.Write([]byte(`{"generation":4,"state":"stopped"}`))
		})
		res, err := New(nil).Stop(context.Background(), Agent{Name: "a", URL: srv.URL, ControlToken: "c"}, "cdp", req)
		if err != nil || res.Generation != 4 || res.State != "stopped" || s.path != "/v1/processes/cdp/stop" {
			t.Fatalf("Stop = %+v, %v (path %s)", res, err, s.path)
		}
	})
	t.Run("409 is a StaleGenerationError", func(t *testing.T) {
		srv, _ := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(409)
			_, _ = w.Write([]byte(`{"error":{"code":"stale_generation","message":"generation 4 is not current","generation":5}}`))
		})
		_, err := New(nil).Restart(context.Background(), Agent{Name: "a", URL: srv.URL, ControlToken: "c"}, "cdp", req)
		var stale *StaleGenerationError
		if !errors.As(err, &stale) || stale.Expected != 4 || stale.Current != 5 || stale.Process != "cdp" {
			t.Fatalf("error = %#v", err)
		}
	})
	t.Run("no control token", func(t *testing.T) {
		_, err := New(nil).Restart(context.Background(), Agent{Name: "a", URL: "http://127.0.0.1:1", ReadToken: "r"}, "cdp", req)
		var ae *Error
		if !errors.As(err, &ae) || ae.Fault != FaultConfig || !strings.Contains(err.Error(), "no control token configured") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("control token refused", func(t *testing.T) {
		srv, _ := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`{"error":{"code":"forbidden","message":"read token"}}`))
		})
		_, err := New(nil).Stop(context.Background(), Agent{Name: "a", URL: srv.URL, ControlToken: "c"}, "cdp", req)
		want := "agent answer: POST " + srv.URL + "/v1/processes/cdp/stop: HTTP 403 Forbidden: the agent refused the control token; check controlToken for this agent: read token"
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
	})
}

func TestEvents(t *testing.T) {
	srv, s := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"events":[{"seq":8,"time":"2026-11-26T04:23:58.477Z","type":"crashed","reason":"exited","process":"cdp","generation":4,"code":null,"signal":"SIGKILL","extra":1}],"next":8}`))
	})
	ev, err := New(nil).Events(context.Background(), Agent{Name: "a", URL: srv.URL, ReadToken: "r"}, 7, 100)
	if err != nil || ev.Next != 8 || len(ev.Events) != 1 || *ev.Events[0].Signal != "SIGKILL" || ev.Events[0].Code != nil {
		t.Fatalf("Events = %+v, %v", ev, err)
	}
	if s.query != "limit=100&since=7" {
		t.Errorf("query = %q", s.query)
	}
}

func TestDiagnose(t *testing.T) {
	srv, _ := fakeAgent(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name string
		url  string
		want string
	}{
		{"answers", srv.URL, "dns ok (127.0.0.1); tcp ok"},
		{"port closed", closedURL, "dns ok (127.0.0.1); tcp failed (connect: connection refused); http not tried"},
		{"unresolvable", "http://no-such-host.invalid:7070", "dns failed ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(nil).Diagnose(context.Background(), Agent{Name: "a", URL: tt.url})
			if got := d.String(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("diagnosis %q, want it to start with %q", got, tt.want)
			}
		})
	}
}
