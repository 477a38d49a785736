package agentclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// elsewhere records every request it gets: another agent, or anything an
// agent might point the monitor at.
type elsewhere struct {
	mu   sync.Mutex
	seen []string
}

func (e *elsewhere) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.seen = append(e.seen, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization"))
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"generation":7,"state":"stopped"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// An agent that answers with a redirect (to another port of the same host,
// another agent's stop) gets an error naming the location; nothing is sent
// there, neither the token nor a control request's body.
func TestRedirectsAreNeverFollowed(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			target := &elsewhere{}
			other := target.start(t)
			redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://user:pw@"+strings.TrimPrefix(other.URL, "http://")+"/v1/processes/cdp/stop?token=x", code)
			}))
			defer redirecting.Close()
			c := New(nil)
			defer c.Close()
			a := Agent{Name: "node-a", URL: redirecting.URL, ReadToken: "read-secret", ControlToken: "control-secret"}

			_, err := c.Status(context.Background(), a)
			var ae *Error
			if !errors.As(err, &ae) || ae.StatusCode != code || !strings.Contains(ae.Detail, "redirect to "+other.URL+"/v1/processes/cdp/stop;") ||
				!strings.Contains(ae.Detail, "never follows a redirect") {
				t.Fatalf("Status: %v", err)
			}
			if strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "token=x") {
				t.Errorf("the error repeats the location's secrets: %v", err)
			}
			gen := int64(3)
			_, err = c.Restart(context.Background(), a, "cdp", ControlRequest{IfGeneration: &gen, Reason: "auto"})
			if !errors.As(err, &ae) || ae.StatusCode != code {
				t.Fatalf("Restart: %v", err)
			}
			target.mu.Lock()
			defer target.mu.Unlock()
			if len(target.seen) != 0 {
				t.Errorf("requests followed the redirect: %v", target.seen)
			}
		})
	}
}

// A caller's own http.Client does not make the client follow redirects either.
func TestRedirectsAreNeverFollowedWithACallersClient(t *testing.T) {
	target := &elsewhere{}
	other := target.start(t)
	redirecting := httptest.NewServer(http.RedirectHandler(other.URL+"/v1/status", http.StatusFound))
	defer redirecting.Close()
	hc := &http.Client{}
	c := New(hc)
	if _, err := c.Status(context.Background(), Agent{Name: "a", URL: redirecting.URL, ReadToken: "read-secret"}); err == nil {
		t.Fatal("a redirect was followed")
	}
	if hc.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
	if len(target.seen) != 0 {
		t.Errorf("requests followed the redirect: %v", target.seen)
	}
}

// A stop's answer (or any JSON without a restart's keys) to a restart is an
// error, not a successful restart.
func TestARestartNeedsARestartsAnswer(t *testing.T) {
	srv := (&elsewhere{}).start(t) // answers every request with a stop's answer
	c := New(nil)
	defer c.Close()
	a := Agent{Name: "node-a", URL: srv.URL, ControlToken: "control-secret"}
	_, err := c.Restart(context.Background(), a, "cdp", ControlRequest{})
	var ae *Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Detail, "the answer is not a restart's answer: pid, startedAt missing") {
		t.Fatalf("Restart = %v", err)
	}
	// The stop's own answer is fine for a stop.
	if res, err := c.Stop(context.Background(), a, "cdp", ControlRequest{}); err != nil || res.Generation != 7 {
		t.Errorf("Stop = %+v, %v", res, err)
	}
}
