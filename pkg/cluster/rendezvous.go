package cluster

// Rendezvous returns the member with the highest weight for key
// (highest-random-weight hashing): weight = 64-bit hash of (member name,
// 0 byte, key); ties broken by name, the smaller name winning. "" when
// members is empty. The order of members does not matter.
//
// The hash is FNV-1a 64 followed by the splitmix64 finaliser, both fixed by
// their definitions, so every Vigil process, whatever its Go version or
// platform, picks the same owner from the same member list. FNV-1a alone
// spreads similar inputs poorly in its high bits; the finaliser fixes that,
// which is what keeps the load even (checked by the tests).
//
// Removing a member moves only the keys it owned; adding one moves to it
// about 1/n of the keys and nothing else.
func Rendezvous(key string, members []string) string {
	best := ""
	var bestWeight uint64
	for i, m := range members {
		w := weight(m, key)
		if i == 0 || w > bestWeight || (w == bestWeight && m < best) {
			best, bestWeight = m, w
		}
	}
	return best
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// weight is mix64(FNV-1a-64(member + "\x00" + key)), computed without
// building the joined string: the owner of every agent is computed on every
// poll.
func weight(member, key string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= fnvPrime64
	}
	h *= fnvPrime64 // the separating 0 byte (h ^= 0 changes nothing)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is splitmix64's step: add the golden gamma, then its finaliser.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
