package cluster

import (
	"fmt"
	"hash/fnv"
	"slices"
	"testing"
)

var threeMembers = []string{"vigil-a", "vigil-b", "vigil-c"}

func agentKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("agent-%d", i)
	}
	return keys
}

func owners(keys, members []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = Rendezvous(k, members)
	}
	return out
}

// TestRendezvousFixedTable catches any change of the hash: members of one
// group running different Vigil versions must agree on every owner.
func TestRendezvousFixedTable(t *testing.T) {
	cases := []struct {
		key, owner string
		weightA    uint64 // weight("vigil-a", key)
	}{
		{"", "vigil-a", 0xe6f5eb89b8600a5e},
		{"agent-1", "vigil-a", 0xfa0281907a4e70de},
		{"agent-2", "vigil-b", 0x8d8eb69b0dcfbf2f},
		{"agent-3", "vigil-c", 0x48ef5cf4c1db6f26},
		{"pg-failover", "vigil-b", 0x3e22a953e771e534},
		{"db01.example.com", "vigil-a", 0xdce2b334f0cf00f3},
		{"cluster/orders", "vigil-c", 0x168f1850157e505f},
		{"Ärger", "vigil-b", 0xa1bc04dc06ec86b5},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			if got := Rendezvous(tc.key, threeMembers); got != tc.owner {
				t.Errorf("Rendezvous(%q) = %q, want %q", tc.key, got, tc.owner)
			}
			if got := weight("vigil-a", tc.key); got != tc.weightA {
				t.Errorf("weight(vigil-a, %q) = %#x, want %#x", tc.key, got, tc.weightA)
			}
		})
	}
}

// TestWeightIsFNV1aThenSplitmix64 checks the inline hash against the
// standard library's FNV-1a and splitmix64's published first output.
func TestWeightIsFNV1aThenSplitmix64(t *testing.T) {
	if got, want := mix64(0), uint64(0xe220a8397b1dcdaf); got != want {
		t.Fatalf("mix64(0) = %#x, want splitmix64's first output from seed 0, %#x", got, want)
	}
	for _, m := range threeMembers {
		for _, k := range agentKeys(50) {
			h := fnv.New64a()
			h.Write([]byte(m + "\x00" + k))
			if got, want := weight(m, k), mix64(h.Sum64()); got != want {
				t.Fatalf("weight(%q, %q) = %#x, want %#x", m, k, got, want)
			}
		}
	}
}

func TestRendezvousEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		members []string
		want    string
	}{
		{"no members", nil, ""},
		{"one member", []string{"only"}, "only"},
		{"duplicate names", []string{"same", "same"}, "same"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Rendezvous("agent-1", tc.members); got != tc.want {
				t.Errorf("Rendezvous = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRendezvousIgnoresMemberOrder(t *testing.T) {
	reversed := slices.Clone(threeMembers)
	slices.Reverse(reversed)
	for _, k := range agentKeys(1000) {
		if a, b := Rendezvous(k, threeMembers), Rendezvous(k, reversed); a != b {
			t.Fatalf("key %q: %q in one order, %q in the other", k, a, b)
		}
	}
}

func TestRendezvousBalance(t *testing.T) {
	const n = 10000
	count := map[string]int{}
	for _, owner := range owners(agentKeys(n), threeMembers) {
		count[owner]++
	}
	third := float64(n) / 3
	for _, m := range threeMembers {
		if c := float64(count[m]); c < 0.9*third || c > 1.1*third {
			t.Errorf("%s owns %d keys, want %.0f ± 10 %%", m, count[m], third)
		}
	}
	t.Logf("10000 keys over 3 members: %v", count)
}

func TestRendezvousRemovingAMemberMovesOnlyItsKeys(t *testing.T) {
	keys := agentKeys(10000)
	before := owners(keys, threeMembers)
	after := owners(keys, []string{"vigil-a", "vigil-c"})
	for _, k := range keys {
		if before[k] != "vigil-b" && after[k] != before[k] {
			t.Fatalf("key %q moved from %s to %s although %s is still a member", k, before[k], after[k], before[k])
		}
		if after[k] == "vigil-b" {
			t.Fatalf("key %q still owned by the removed member", k)
		}
	}
}

func TestRendezvousAddingAMemberMovesAQuarterToIt(t *testing.T) {
	keys := agentKeys(10000)
	before := owners(keys, threeMembers)
	after := owners(keys, append(slices.Clone(threeMembers), "vigil-d"))
	moved := 0
	for _, k := range keys {
		if after[k] == before[k] {
			continue
		}
		if after[k] != "vigil-d" {
			t.Fatalf("key %q moved from %s to %s, not to the new member", k, before[k], after[k])
		}
		moved++
	}
	if quarter := len(keys) / 4; moved < quarter*9/10 || moved > quarter*11/10 {
		t.Errorf("%d keys moved to the new member, want about %d (± 10 %%)", moved, quarter)
	}
}

func BenchmarkRendezvous(b *testing.B) {
	members := []string{"grafana-0:7946", "grafana-1:7946", "grafana-2:7946"}
	for b.Loop() {
		Rendezvous("cluster/orders-primary", members)
	}
}
