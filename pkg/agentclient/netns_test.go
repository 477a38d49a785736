package agentclient

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netnsScript builds, in the network namespace it runs in, a path of two
// hops: this namespace (10.9.1.1) -> a router namespace (10.9.1.2,
// 10.9.2.1) -> the agent's namespace (10.9.2.2), each a process's own
// namespace, gone when its process ends. It diagnoses the agent's address
// through the router, again once the router has lost its route to the
// agent's network, and once more with ICMP sockets forbidden. The router
// does not limit its ICMP errors (Linux sends one a second to a host after
// a burst of six): three diagnoses in two seconds would see its limit, not
// the path. Its "no route" errors have a limit of their own that a network
// namespace cannot change (one a second, after a burst of five seconds'
// worth): the dropped route is probed after five quiet seconds.
const netnsScript = `set -eu
bin=$1
ip link set lo up
unshare -n sleep 120 & r=$!
unshare -n sleep 120 & a=$!
trap 'kill $r $a 2>/dev/null' EXIT
me=$(readlink /proc/self/ns/net)
while [ "$(readlink /proc/$r/ns/net)" = "$me" ] || [ "$(readlink /proc/$a/ns/net)" = "$me" ]; do sleep 0.01; done
ip link add v0 type veth peer name v1
ip link set v1 netns $r
nsenter -t $r -n ip link add v2 type veth peer name v3
nsenter -t $r -n ip link set v3 netns $a
ip addr add 10.9.1.1/24 dev v0
ip link set v0 up
ip route add 10.9.2.0/24 via 10.9.1.2
nsenter -t $r -n sh -c 'ip link set lo up; ip addr add 10.9.1.2/24 dev v1; ip link set v1 up; ip addr add 10.9.2.1/24 dev v2; ip link set v2 up; echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/icmp_ratelimit'
nsenter -t $a -n sh -c 'ip link set lo up; ip addr add 10.9.2.2/24 dev v3; ip link set v3 up; ip route add default via 10.9.2.1'
probe() { VIGIL_NETNS_PROBE=$1 VIGIL_NETNS_LABEL=$2 "$bin" -test.run '^TestNetnsProbe$' -test.v; }
echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range
probe 10.9.2.2 two-hops
nsenter -t $r -n ip addr del 10.9.2.1/24 dev v2
sleep 5
probe 10.9.2.2 dropped-route
echo "1 0" > /proc/sys/net/ipv4/ping_group_range
probe 10.9.1.2 icmp-forbidden
`

// The diagnosis of a silent agent through a real two-hop path, built in
// network namespaces this test creates (root, unshare, ip and nsenter
// needed; nothing outside the namespaces changes).
func TestDiagnoseThroughARouterInNetworkNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: creates network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces needs root")
	}
	for _, tool := range []string{"unshare", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (util-linux, iproute2)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", netnsScript, "sh", os.Args[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("the namespaces: %v\n%s", err, out)
	}
	got := map[string]Diagnosis{}
	for _, line := range strings.Split(string(out), "\n") {
		if label, raw, ok := strings.Cut(line, " DIAGNOSIS "); ok {
			var d Diagnosis
			if err := json.Unmarshal([]byte(raw), &d); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			got[label] = d
		}
	}
	two, dropped, forbidden := got["two-hops"], got["dropped-route"], got["icmp-forbidden"]
	t.Logf("two hops: %s\ndropped route: %s\nICMP forbidden: %s", two, dropped, forbidden)
	if !two.Ping.OK || !strings.HasPrefix(two.Ping.Detail, "3 of 3 replies, best ") {
		t.Errorf("two hops, ping: %+v", two.Ping)
	}
	if !two.Path.OK || !strings.HasPrefix(two.Path.Detail, "reached in 2 hops: 1: 10.9.1.2 ") || !strings.Contains(two.Path.Detail, ", 2: 10.9.2.2 ") {
		t.Errorf("two hops, path: %+v", two.Path)
	}
	if two.TCP.OK || !strings.Contains(two.TCP.Detail, "connection refused") {
		t.Errorf("two hops, tcp (nothing listens on 7070): %+v", two.TCP)
	}
	if dropped.Ping.OK || dropped.Ping.Detail != "no reply (network unreachable from 10.9.1.2)" {
		t.Errorf("dropped route, ping: %+v", dropped.Ping)
	}
	if dropped.Path.OK || dropped.Path.Detail != "" && !strings.HasPrefix(dropped.Path.Detail, "ends at hop 1: 1: 10.9.1.2 ") ||
		!strings.HasSuffix(dropped.Path.Detail, "(network unreachable)") {
		t.Errorf("dropped route, path: %+v", dropped.Path)
	}
	if forbidden.Ping.Done || !strings.Contains(forbidden.Ping.Detail, "net.ipv4.ping_group_range") || !strings.HasPrefix(forbidden.Path.Detail, "reached in 1 hop: 1: 10.9.1.2 ") {
		t.Errorf("ICMP sockets forbidden: ping %+v, path %+v", forbidden.Ping, forbidden.Path)
	}
	if s := forbidden.String(); !strings.Contains(s, "; ping skipped: this system does not allow unprivileged ICMP sockets") {
		t.Errorf("String: %s", s)
	}
}

// TestNetnsProbe is the probe the test above runs inside its namespaces.
func TestNetnsProbe(t *testing.T) {
	target := os.Getenv("VIGIL_NETNS_PROBE")
	if target == "" {
		t.Skip("run by TestDiagnoseThroughARouterInNetworkNamespaces inside its network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	d := New(nil).Diagnose(ctx, Agent{Name: "agent", URL: "http://" + target + ":7070"})
	raw, _ := json.Marshal(d)
	fmt.Printf("%s DIAGNOSIS %s\n", os.Getenv("VIGIL_NETNS_LABEL"), raw)
}
