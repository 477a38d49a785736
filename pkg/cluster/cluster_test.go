package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// logBuf collects one member's log; it is printed only when a test fails
// (memberlist goroutines may still log after the test has ended, when t.Log
// is no longer allowed).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type member struct {
	*Cluster
	log *logBuf
}

// start starts a member on loopback, any port, with a quick join retry;
// Close runs when the test ends.
func start(t *testing.T, cfg Config) member {
	t.Helper()
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1"
	}
	if cfg.BindPort == 0 {
		cfg.BindPort = AnyPort
	}
	if cfg.Group == "" {
		cfg.Group = "org 1 / id 5 / uid abc"
	}
	if cfg.joinRetry == 0 {
		cfg.joinRetry = 100 * time.Millisecond
	}
	lb := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", c.Self(), lb.String())
		}
	})
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close(%s): %v", c.Self(), err)
		}
	})
	return member{c, lb}
}

func memberNames(c *Cluster) []string {
	var out []string
	for _, m := range c.Members() {
		out = append(out, m.Name)
	}
	return out
}

// waitFor polls cond every 20 ms and returns how long it took to hold.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for !cond() {
		if time.Since(begin) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(begin)
}

func seesExactly(c *Cluster, names ...string) func() bool {
	want := slices.Clone(names)
	slices.Sort(want)
	return func() bool { return slices.Equal(memberNames(c), want) }
}

// checkAgreement checks that every member computes the same owner for every
// key, that the owner is one of them, and that exactly it Owns the key.
func checkAgreement(t *testing.T, ms ...member) {
	t.Helper()
	var names []string
	for _, m := range ms {
		names = append(names, m.Self())
	}
	for _, key := range agentKeys(300) {
		owner := ms[0].Owner(key)
		if !slices.Contains(names, owner) {
			t.Fatalf("key %q: owner %q is not one of %v", key, owner, names)
		}
		for _, m := range ms {
			if got := m.Owner(key); got != owner {
				t.Fatalf("key %q: %s says %q owns it, %s says %q", key, ms[0].Self(), owner, m.Self(), got)
			}
			if m.Owns(key) != (m.Self() == owner) {
				t.Fatalf("key %q: %s.Owns = %v with owner %q", key, m.Self(), m.Owns(key), owner)
			}
		}
	}
}

// startThree starts a seed and two members joining through it, and waits
// until all three see all three.
func startThree(t *testing.T, profile string) (a, b, c member) {
	t.Helper()
	a = start(t, Config{Name: "a", Profile: profile})
	b = start(t, Config{Name: "b", Profile: profile, Join: []string{a.Addr()}})
	c = start(t, Config{Name: "c", Profile: profile, Join: []string{a.Addr()}})
	for _, m := range []member{a, b, c} {
		waitFor(t, 5*time.Second, m.Self()+" sees a, b and c", seesExactly(m.Cluster, "a", "b", "c"))
	}
	return a, b, c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"minimal", Config{Group: "g"}, ""},
		{"everything", Config{Name: "n", Group: "g", BindAddr: "::1", BindPort: 7000, AdvertiseAddr: "10.0.0.1", AdvertisePort: 7001,
			Join: []string{"grafana-0.grafana:7946", "[::1]:7946"}, SecretKey: make([]byte, 32), Profile: "local"}, ""},
		{"any port", Config{Group: "g", BindPort: AnyPort}, ""},
		{"no group", Config{}, "cluster.group: must not be empty: members share agents only within one group"},
		{"group too long", Config{Group: strings.Repeat("x", MaxGroupLen+1)}, fmt.Sprintf("cluster.group: at most %d bytes, got %d", MaxGroupLen, MaxGroupLen+1)},
		{"name with spaces", Config{Group: "g", Name: " a"}, `cluster.name: must not start or end with spaces, got " a"`},
		{"bind addr not an IP", Config{Group: "g", BindAddr: "localhost"}, `cluster.bindAddr: must be an IP address, got "localhost"`},
		{"unspecified IPv6 without advertise addr", Config{Group: "g", BindAddr: "::"}, `cluster.bindAddr: "::" needs advertiseAddr (the address other members reach this one at); or use 0.0.0.0`},
		{"unspecified IPv6 with advertise addr", Config{Group: "g", BindAddr: "::", AdvertiseAddr: "fd00::1"}, ""},
		{"bind port too small", Config{Group: "g", BindPort: -2}, "cluster.bindPort: must be 1 to 65535 (0: the default 7946, -1: any free port), got -2"},
		{"bind port too big", Config{Group: "g", BindPort: 70000}, "cluster.bindPort: must be 1 to 65535 (0: the default 7946, -1: any free port), got 70000"},
		{"advertise addr not an IP", Config{Group: "g", AdvertiseAddr: "grafana-0"}, `cluster.advertiseAddr: must be an IP address, got "grafana-0"`},
		{"advertise port without addr", Config{Group: "g", AdvertisePort: 7946}, "cluster.advertisePort: is used only with advertiseAddr, which is empty"},
		{"advertise port too big", Config{Group: "g", AdvertiseAddr: "10.0.0.1", AdvertisePort: 65536}, "cluster.advertisePort: must be 1 to 65535 (0: the bound port), got 65536"},
		{"seed without port", Config{Group: "g", Join: []string{"a:1", "grafana-0"}}, `cluster.join[1]: must be host:port, got "grafana-0"`},
		{"seed without host", Config{Group: "g", Join: []string{":7946"}}, `cluster.join[0]: has no host, got ":7946"`},
		{"seed port zero", Config{Group: "g", Join: []string{"a:0"}}, `cluster.join[0]: port must be 1 to 65535, got "a:0"`},
		{"seed port not a number", Config{Group: "g", Join: []string{"a:gossip"}}, `cluster.join[0]: port must be 1 to 65535, got "a:gossip"`},
		{"short secret key", Config{Group: "g", SecretKey: []byte("12345")}, "cluster.secretKey: must be 16, 24 or 32 bytes, got 5"},
		{"unknown profile", Config{Group: "g", Profile: "wan"}, `cluster.profile: must be "lan" or "local", got "wan"`},
		{"several problems", Config{SecretKey: []byte("x"), Profile: "LAN"},
			"cluster.group: must not be empty: members share agents only within one group\n" +
				"cluster.secretKey: must be 16, 24 or 32 bytes, got 1\n" +
				`cluster.profile: must be "lan" or "local", got "LAN"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Validate:\n%s\nwant:\n%s", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "cluster.") {
				t.Errorf("Validate: %v is not a *FieldError naming a cluster field", err)
			}
			if _, err := Start(tc.cfg); err == nil || err.Error() != tc.want {
				t.Errorf("Start: %v, want the error of Validate", err)
			}
		})
	}
}

func TestAloneMemberOwnsEverything(t *testing.T) {
	m := start(t, Config{})
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(m.Addr())
	if err != nil || port == "0" {
		t.Fatalf("Addr() = %q: not host:port of the bound port (%v)", m.Addr(), err)
	}
	if want := host + ":" + port; m.Self() != want {
		t.Errorf("default name %q, want hostname:port %q", m.Self(), want)
	}
	if got := m.Members(); len(got) != 1 || got[0] != (Member{Name: m.Self(), Addr: m.Addr()}) {
		t.Errorf("Members() = %v, want only itself at %s", got, m.Addr())
	}
	for _, k := range agentKeys(20) {
		if !m.Owns(k) {
			t.Fatalf("a member alone does not own %q", k)
		}
	}
	if !strings.Contains(m.log.String(), "gossip is not encrypted") {
		t.Errorf("no warning about the missing secret key in the log:\n%s", m.log.String())
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := m.Leave(time.Second); err != nil {
		t.Errorf("Leave after Close: %v", err)
	}
	if got := m.Members(); len(got) != 0 {
		t.Errorf("Members() after Close = %v, want none", got)
	}
	if m.Owns("agent-1") {
		t.Error("a closed member still owns agents")
	}
}

func TestStartReportsAPortInUse(t *testing.T) {
	a := start(t, Config{Name: "a"})
	_, port, _ := net.SplitHostPort(a.Addr())
	p, _ := strconv.Atoi(port)
	_, err := Start(Config{Name: "b", Group: "g", BindAddr: "127.0.0.1", BindPort: p})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "cluster.bindPort" || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Fatalf("Start on a port in use: %v, want a cluster.bindPort error naming 127.0.0.1:%s", err, port)
	}
}

func TestThreeMembersAgreeOnOwners(t *testing.T) {
	a, b, c := startThree(t, ProfileLAN)
	checkAgreement(t, a, b, c)
	for _, m := range []member{a, b, c} {
		select {
		case <-m.Changes():
		default:
			t.Errorf("%s: no signal on Changes after the others joined", m.Self())
		}
		if got := m.Members(); got[0].Addr == "" || got[1].Addr == "" || got[2].Addr == "" {
			t.Errorf("%s: Members() without addresses: %v", m.Self(), got)
		}
	}
	// Every member owns a share of the 300 keys.
	count := map[string]int{}
	for _, k := range agentKeys(300) {
		count[a.Owner(k)]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if count[n] < 60 {
			t.Errorf("member %s owns %d of 300 keys, want about 100", n, count[n])
		}
	}
}

// TestCrashIsDetected measures the failure detection of each profile: a
// member that shuts down without leaving is dropped by the other two, who
// agree on the owners again.
func TestCrashIsDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for failure detection (several seconds per profile)")
	}
	for _, profile := range []string{ProfileLAN, ProfileLocal} {
		t.Run(profile, func(t *testing.T) {
			a, b, c := startThree(t, profile)
			for _, m := range []member{a, b} { // drain the joins
				select {
				case <-m.Changes():
				default:
				}
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			crashed := time.Now()
			var wg sync.WaitGroup
			took := make([]time.Duration, 2)
			for i, m := range []member{a, b} {
				wg.Go(func() {
					for !slices.Equal(memberNames(m.Cluster), []string{"a", "b"}) && time.Since(crashed) < 15*time.Second {
						time.Sleep(20 * time.Millisecond)
					}
					took[i] = time.Since(crashed)
				})
			}
			wg.Wait()
			t.Logf("profile %q: crashed member dropped by a after %s, by b after %s", profile,
				took[0].Round(10*time.Millisecond), took[1].Round(10*time.Millisecond))
			for i, m := range []member{a, b} {
				if took[i] >= 15*time.Second {
					t.Fatalf("%s still sees %v 15 s after c crashed", m.Self(), memberNames(m.Cluster))
				}
				select {
				case <-m.Changes():
				default:
					t.Errorf("%s: no signal on Changes after c died", m.Self())
				}
			}
			checkAgreement(t, a, b)
		})
	}
}

func TestLeaveIsSeenAtOnce(t *testing.T) {
	a, b, c := startThree(t, ProfileLAN)
	left := time.Now()
	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	leaveTook := time.Since(left)
	waitFor(t, 2*time.Second-leaveTook, "a and b drop c within 2 s of Leave", func() bool {
		return seesExactly(a.Cluster, "a", "b")() && seesExactly(b.Cluster, "a", "b")()
	})
	t.Logf("member that left dropped by both others %s after Leave began (Leave itself took %s)",
		time.Since(left).Round(time.Millisecond), leaveTook.Round(time.Millisecond))
	checkAgreement(t, a, b)
	if err := c.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}
}

func TestMemberOfAnotherGroupIsIgnored(t *testing.T) {
	a := start(t, Config{Name: "a", Group: "fleet-east"})
	b := start(t, Config{Name: "b", Group: "fleet-east", Join: []string{a.Addr()}})
	x := start(t, Config{Name: "x", Group: "fleet-west", Join: []string{a.Addr()}})
	waitFor(t, 5*time.Second, "gossip reaches all three", func() bool {
		return a.ml.NumMembers() == 3 && b.ml.NumMembers() == 3 && x.ml.NumMembers() == 3
	})
	// Gossip knows x; the group does not.
	for _, m := range []member{a, b} {
		if !seesExactly(m.Cluster, "a", "b")() {
			t.Errorf("%s: Members() = %v, want a and b", m.Self(), memberNames(m.Cluster))
		}
	}
	if !seesExactly(x.Cluster, "x")() {
		t.Errorf("x: Members() = %v, want only x", memberNames(x.Cluster))
	}
	checkAgreement(t, a, b)
	for _, k := range agentKeys(50) {
		if a.Owner(k) == "x" || !x.Owns(k) {
			t.Fatalf("key %q: owner %q for a, x.Owns = %v", k, a.Owner(k), x.Owns(k))
		}
	}
	// Leave time for gossip to repeat itself, then count the warnings.
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(a.log.String(), "ignoring a cluster member of another group"); n != 1 {
		t.Errorf("a warned %d times about x, want once", n)
	}
	if !strings.Contains(a.log.String(), "otherGroup=fleet-west") {
		t.Errorf("a's warning does not name x's group:\n%s", a.log.String())
	}
	if n := strings.Count(x.log.String(), "ignoring a cluster member of another group"); n != 2 {
		t.Errorf("x warned %d times about a and b, want once each", n)
	}
}

func TestSecretKeyKeepsOthersOut(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := start(t, Config{Name: "a", SecretKey: key})
	b := start(t, Config{Name: "b", SecretKey: key, Join: []string{a.Addr()}})
	waitFor(t, 5*time.Second, "a and b see each other", func() bool {
		return seesExactly(a.Cluster, "a", "b")() && seesExactly(b.Cluster, "a", "b")()
	})
	other := start(t, Config{Name: "other-key", SecretKey: []byte("fedcba9876543210fedcba98"), Join: []string{a.Addr()}})
	plain := start(t, Config{Name: "no-key", Join: []string{a.Addr()}})
	// Both retry every 100 ms; give them several tries.
	time.Sleep(time.Second)
	for _, m := range []member{a, b} {
		if n := m.ml.NumMembers(); n != 2 || !seesExactly(m.Cluster, "a", "b")() {
			t.Errorf("%s: gossip knows %d nodes, Members() = %v; want only a and b", m.Self(), n, memberNames(m.Cluster))
		}
	}
	for _, m := range []member{other, plain} {
		if n := m.ml.NumMembers(); n != 1 {
			t.Errorf("%s joined with a wrong key: gossip knows %d nodes, Members() = %v", m.Self(), n, memberNames(m.Cluster))
		}
	}
	if strings.Contains(a.log.String(), "gossip is not encrypted") {
		t.Error("a warns about missing encryption although it has a key")
	}
}

func TestJoinRetriesUntilASeedStarts(t *testing.T) {
	// A port free now, for the seed that starts later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(seedAddr)
	p, _ := strconv.Atoi(port)

	b := start(t, Config{Name: "b", Join: []string{seedAddr}})
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	if !seesExactly(b.Cluster, "b")() {
		t.Fatalf("b sees %v before the seed started", memberNames(b.Cluster))
	}
	a := start(t, Config{Name: "a", BindPort: p})
	waitFor(t, 5*time.Second, "b joins the seed once it starts", func() bool {
		return seesExactly(a.Cluster, "a", "b")() && seesExactly(b.Cluster, "a", "b")()
	})
	if !strings.Contains(b.log.String(), "cluster member joined its seeds") {
		t.Errorf("b did not log its join:\n%s", b.log.String())
	}
}

func TestMemberlistLogLinesBecomeDebugRecords(t *testing.T) {
	var buf bytes.Buffer
	w := logWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return removeTime(a) },
	}))}
	_, _ = w.Write([]byte("[ERR] memberlist: Failed to send ping: connection refused\n"))
	_, _ = w.Write([]byte("no level here\n"))
	want := `level=DEBUG msg="memberlist: Failed to send ping: connection refused" memberlistLevel=ERR` + "\n" +
		`level=DEBUG msg="no level here" memberlistLevel=""` + "\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}

	buf.Reset()
	quiet := logWriter{slog.New(slog.NewTextHandler(&buf, nil))} // info and above
	if n, err := quiet.Write([]byte("[DEBUG] memberlist: x\n")); n != 22 || err != nil || buf.Len() != 0 {
		t.Errorf("Write below the level = %d, %v, wrote %q", n, err, buf.String())
	}
}

func removeTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// TestObserve follows the event delegate through the cases gossip rarely
// produces on its own: a member changing group, a node that is not Vigil's.
func TestObserve(t *testing.T) {
	lb := &logBuf{}
	c := &Cluster{
		cfg:     Config{Group: "east"},
		self:    "a",
		log:     slog.New(slog.NewTextHandler(lb, nil)),
		changes: make(chan struct{}, 1),
		inGroup: map[string]bool{},
		warned:  map[string]bool{},
	}
	node := func(name, meta string) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: []byte(meta)}
	}
	steps := []struct {
		name   string
		node   *memberlist.Node
		gone   bool
		signal bool
		warns  int // warnings logged so far
	}{
		{"member of the group joins", node("b", metaPrefix+"east"), false, true, 0},
		{"member of another group joins", node("x", metaPrefix+"west"), false, false, 1},
		{"it updates, still elsewhere", node("x", metaPrefix+"west"), false, false, 1},
		{"it leaves", node("x", metaPrefix+"west"), true, false, 1},
		{"a node that is not Vigil's joins", node("consul-1", "dc1"), false, false, 2},
		{"a member moves to another group", node("b", metaPrefix+"west"), false, true, 3},
		{"it comes back", node("b", metaPrefix+"east"), false, true, 3},
		{"it dies", node("b", metaPrefix+"east"), true, true, 3},
	}
	for _, st := range steps {
		c.observe(st.node, st.gone)
		got := false
		select {
		case <-c.changes:
			got = true
		default:
		}
		if got != st.signal {
			t.Errorf("%s: signal %v, want %v", st.name, got, st.signal)
		}
		if n := strings.Count(lb.String(), "level=WARN"); n != st.warns {
			t.Errorf("%s: %d warnings so far, want %d:\n%s", st.name, n, st.warns, lb.String())
		}
	}
	if !strings.Contains(lb.String(), "not a Vigil monitor") {
		t.Errorf("no warning names the node that is not Vigil's:\n%s", lb.String())
	}
}
