package agentclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const token = "s3cret-read-token"

func TestHealthzAnswered(t *testing.T) {
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()

	tests := []struct {
		name     string
		agent    Agent
		wantAuth string
		wantPath string
	}{
		{"with token", Agent{Name: "a", URL: srv.URL, ReadToken: token}, "Bearer " + token, "/healthz"},
		{"without token", Agent{Name: "a", URL: srv.URL}, "", "/healthz"},
		{"base path with slash", Agent{Name: "a", URL: srv.URL + "/vigil/"}, "", "/vigil/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(nil).Healthz(context.Background(), tt.agent)
			if err != nil {
				t.Fatalf("Healthz: %v", err)
			}
			if h.StatusCode != 200 || h.Status != "ok" || h.RTT <= 0 {
				t.Errorf("Health = %+v", h)
			}
			if gotAuth != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", gotAuth, tt.wantAuth)
			}
			if gotPath != tt.wantPath {
				t.Errorf("path = %q, want %q", gotPath, tt.wantPath)
			}
		})
	}
}

func TestHealthzFailures(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/denied/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"unauthorized","message":"bad token"}}`))
	})
	mux.HandleFunc("/broken/healthz", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	// A proxy in front of a dead agent: a long HTML page with a newline and a
	// "|", which must not reach a one-line status.
	proxyPage := "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>upstream | down" + strings.Repeat(" ", 1150) + "</body>\n</html>\n"
	mux.HandleFunc("/proxy/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(proxyPage))
	})
	mux.HandleFunc("/odd/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; ; <script>")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<p>busy</p>"))
	})
	mux.HandleFunc("/slow/healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name      string
		url       string
		timeout   time.Duration
		fault     Fault
		status    int
		wantMsg   string
		exact     bool
		isTimeout bool
	}{
		{name: "token refused", url: srv.URL + "/denied", fault: FaultAgent, status: 401,
			wantMsg: "agent answer: GET " + srv.URL + "/denied/healthz: HTTP 401 Unauthorized: the agent refused the read token; check readToken for this agent: bad token"},
		{name: "server error", url: srv.URL + "/broken", fault: FaultAgent, status: 500,
			wantMsg: "agent answer: GET " + srv.URL + "/broken/healthz: HTTP 500 Internal Server Error: a text/plain body (5 bytes), not an agent's answer"},
		{name: "a proxy's error page", url: srv.URL + "/proxy", fault: FaultAgent, status: 502,
			wantMsg: "agent answer: GET " + srv.URL + "/proxy/healthz: HTTP 502 Bad Gateway: a text/html body (1,238 bytes), not an agent's answer", exact: true},
		{name: "an unreadable content type", url: srv.URL + "/odd", fault: FaultAgent, status: 503,
			wantMsg: "agent answer: GET " + srv.URL + "/odd/healthz: HTTP 503 Service Unavailable: a body of an unreadable content type (11 bytes), not an agent's answer", exact: true},
		{name: "not an agent", url: srv.URL + "/nothing", fault: FaultAgent, status: 404,
			wantMsg: "agent answer: GET " + srv.URL + "/nothing/healthz: HTTP 404 Not Found: is this URL a vigil-agent?: a text/plain body (19 bytes), not an agent's answer", exact: true},
		{name: "connection refused", url: closedURL, fault: FaultNetwork,
			wantMsg: "network: GET " + closedURL + "/healthz: no answer ("},
		{name: "timeout", url: srv.URL + "/slow", timeout: 50 * time.Millisecond, fault: FaultNetwork, isTimeout: true,
			wantMsg: "network: GET " + srv.URL + "/slow/healthz: no answer before the timeout ("},
		{name: "bad url", url: "agent-a:7071", fault: FaultConfig,
			wantMsg: "configuration: GET agent-a:7071: agent URL must be an absolute http or https URL"},
		{name: "password in url is redacted", url: "http://user:pw@127.0.0.1:1", fault: FaultNetwork,
			wantMsg: "network: GET http://user:xxxxx@127.0.0.1:1/healthz: no answer ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := New(nil).Healthz(ctx, Agent{Name: "a", URL: tt.url, ReadToken: token})
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if ae.Fault != tt.fault || ae.StatusCode != tt.status || ae.Agent != "a" {
				t.Errorf("Error = %+v", ae)
			}
			if !strings.HasPrefix(err.Error(), tt.wantMsg) || (tt.exact && err.Error() != tt.wantMsg) {
				t.Errorf("message\n got: %s\nwant prefix: %s", err, tt.wantMsg)
			}
			if ae.IsTimeout() != tt.isTimeout {
				t.Errorf("IsTimeout() = %v", ae.IsTimeout())
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("credential leaked: %s", err)
			}
		})
	}
}

// An agent's message is quoted in the error cut to a bound, as the engine
// cuts what it stores: whole characters, and a marker saying it was cut.
func TestAgentMessageIsCutWithoutSplittingACharacter(t *testing.T) {
	// One ASCII byte, then two-byte characters: a cut at any even byte
	// count falls inside one.
	msg := "x" + strings.Repeat("é", 400)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"` + msg + `"}}`))
	}))
	defer srv.Close()
	_, err := New(nil).Healthz(context.Background(), Agent{Name: "a", URL: srv.URL})
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !utf8.ValidString(ae.Detail) {
		t.Errorf("a character was split: %q", ae.Detail)
	}
	if want := "…(truncated, 801 bytes)"; !strings.HasSuffix(ae.Detail, want) {
		t.Errorf("detail %q does not end with %q", ae.Detail, want)
	}
	if quoted := ae.Detail[strings.Index(ae.Detail, ": x")+2:]; len(quoted) > maxQuoted {
		t.Errorf("%d bytes of the agent's message quoted, want at most %d", len(quoted), maxQuoted)
	}
}
