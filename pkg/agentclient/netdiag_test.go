package agentclient

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// On loopback the path is one hop: the host itself answers "port
// unreachable". The echo runs or is skipped as this system's
// net.ipv4.ping_group_range says.
func TestDiagnoseProbesThePath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d := New(nil).Diagnose(ctx, Agent{Name: "a", URL: srv.URL})
	if !d.Path.Done || !d.Path.OK || !strings.HasPrefix(d.Path.Detail, "reached in 1 hop: 1: 127.0.0.1 ") {
		t.Errorf("path: %+v", d.Path)
	}
	rng, _ := os.ReadFile("/proc/sys/net/ipv4/ping_group_range")
	if f := strings.Fields(string(rng)); len(f) == 2 && atoi(f[0]) > atoi(f[1]) {
		if d.Ping.Done || !strings.Contains(d.Ping.Detail, "net.ipv4.ping_group_range") {
			t.Errorf("ping with ICMP sockets forbidden (%s): %+v", strings.TrimSpace(string(rng)), d.Ping)
		}
	}
	if s := d.String(); !strings.Contains(s, "; path ok (reached in 1 hop: 1: 127.0.0.1 ") {
		t.Errorf("String: %s", s)
	}
	// Nothing listens on the probe's ports here either: a closed port is the answer.
	if st := pathStep(ctx, net.ParseIP("127.0.0.2")); !st.OK {
		t.Errorf("127.0.0.2: %+v", st)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
