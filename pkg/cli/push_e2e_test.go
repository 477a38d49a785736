package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

// forwardProxy is an HTTP proxy on loopback that tunnels CONNECT and
// refuses everything else, recording every request it sees.
type forwardProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string
}

func startForwardProxy(t *testing.T) *forwardProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &forwardProxy{ln: ln}
	srv := &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *forwardProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *forwardProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func (p *forwardProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.Host)
	p.mu.Unlock()
	if r.Method != http.MethodConnect {
		http.Error(w, "this proxy only tunnels", http.StatusForbidden)
		return
	}
	upstream, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_, _ = client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() {
		_, _ = io.Copy(upstream, buf)
		upstream.Close()
	}()
	go func() {
		_, _ = io.Copy(client, upstream)
		client.Close()
	}()
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil watch"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "monitor.crt"), filepath.Join(dir, "monitor.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// A real agent the monitor is not told how to reach (no URL in the fleet)
// reports to vigil watch over HTTPS through a forward proxy that sees only
// CONNECT: its CDP process, killed with SIGKILL, is restarted through the
// answer to its report; once the agent stops, it is GRACE, then FAILED at
// its budget counted from its last report plus the interval.
func TestPushAgentThroughAProxy(t *testing.T) {
	agentproc.SkipShort(t, agentproc.RealAgent)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	proxy := startForwardProxy(t)
	// Budget: 1s response + max(restart 3s) = 4s, from the last report plus 1s.
	fleetFile := writeFleet(t, "pollInterval: 1s\ndefaults:\n  budget: { responseTime: 1s, processing: 0, failover: 0, restart: 3s, networkInterruption: 0, appErrorRecovery: 0 }\n"+
		"agents:\n  - name: nat\n    transport: push\n    reportEvery: 1s\n    reportToken: "+listenToken+"\n")
	ctxArgs := []string{"watch", "--config", fleetFile, "--json", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key}
	url, w := startWatchArgs(t, ctxArgs)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("listening at %s", url)
	}
	agent := agentproc.StartConfig(t, filepath.Join(dir, "agent"), map[string]any{
		"listen":    "127.0.0.1:0",
		"auth":      map[string]any{"readToken": agentproc.ReadToken, "controlToken": agentproc.ControlToken},
		"processes": []map[string]any{{"name": "cdp", "kind": "command", "command": []string{"sleep", "100000"}, "stopTimeout": "1s"}},
		"report":    map[string]any{"to": url, "name": "nat", "every": "1s", "token": listenToken, "proxy": proxy.URL(), "caFile": cert},
	}, "")
	w.waitFor(t, "nat OK", 15*time.Second, func(l jsonLine) bool { return l.Agent == "nat" && l.Process == "" && l.To == "OK" })

	pid := cdpPID(t, agent)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restart := w.waitFor(t, "a requested restart", 15*time.Second, func(l jsonLine) bool { return l.Type == "action" && l.Action == "restart" })
	if restart.Result != "requested" || restart.Generation != 2 || restart.By != "auto" {
		t.Errorf("restart: %+v", restart)
	}
	w.waitFor(t, "cdp OK again", 15*time.Second, func(l jsonLine) bool { return l.Process == "cdp" && l.To == "OK" })
	if newPID := cdpPID(t, agent); newPID == pid || newPID == 0 {
		t.Errorf("CDP was not restarted: pid %d", newPID)
	}
	if log := agentEvents(t, agent); !strings.Contains(log, `"requestedBy":"vigil auto-restart"`) {
		t.Errorf("the agent did not record the monitor's request: %s", log)
	}

	agent.Stop()
	stopped := time.Now()
	grace := w.waitFor(t, "nat GRACE", 10*time.Second, func(l jsonLine) bool { return l.Agent == "nat" && l.Process == "" && l.To == "GRACE" })
	failed := w.waitFor(t, "nat FAILED", 15*time.Second, func(l jsonLine) bool { return l.Agent == "nat" && l.Process == "" && l.To == "FAILED" })
	if grace.From != "OK" || failed.From != "GRACE" || time.Since(stopped) < 3500*time.Millisecond {
		t.Errorf("after the agent stopped: %+v then %+v, %s after", grace, failed, time.Since(stopped))
	}
	seen := proxy.requests()
	if len(seen) == 0 {
		t.Fatal("the proxy saw nothing: the reports did not go through it")
	}
	for _, r := range seen {
		if r != "CONNECT "+strings.TrimSuffix(strings.TrimPrefix(url, "https://"), ReportsPath) {
			t.Errorf("the proxy saw %q; it must see only CONNECT to the monitor", r)
		}
	}
	t.Logf("the proxy tunnelled %d connections, each a CONNECT to the monitor", len(seen))
}
