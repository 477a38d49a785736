package response

import (
	"encoding/json"
	"fmt"
	"testing"
)

// realistic is the size and shape of a real agent's answer: a cluster node with three processes,
// one of them a replicator with its protection block and last verify.
func realistic(i int) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"v1","time":"2026-11-26T04:23:%02d.%03dZ",
"agent":{"id":"a4c1f2e0-6a1b-4c1e-9d1c-2f1e0d9c8b7a","version":"0.1.0","hostname":"db-%d.example.internal","startedAt":"2026-11-26T04:00:00Z","pid":812},
"cluster":{"name":"sql-ha","node":"node-a","role":"active","roleReadAt":"2026-11-26T04:23:58Z","roleError":null},
"processes":[
{"name":"cdp","kind":"command","state":"running","expected":true,"pid":19966,"generation":4,"startedAt":"2026-11-26T04:20:00Z","restarts":3,
 "lastExit":{"code":null,"signal":"SIGKILL","at":"2026-11-26T04:19:59Z"},"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":1,"autoRestartAt":null},
{"name":"journal-shipper","kind":"systemd","state":"running","expected":true,"pid":20011,"generation":1,"startedAt":"2026-11-26T04:00:02Z","restarts":0,
 "lastExit":null,"protection":null,"autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null},
{"name":"files","kind":"replicator","state":"running","expected":true,"pid":20042,"generation":2,"startedAt":"2026-11-26T04:00:03Z","restarts":1,
 "lastExit":{"code":1,"signal":null,"at":"2026-11-26T04:00:02Z"},
 "protection":{"lastChangeAt":"2026-11-26T04:23:%02dZ","lastReplicatedAt":"2026-11-26T04:23:%02dZ","lagSeconds":%d.25,"pendingChanges":%d,"pendingBytes":%d,
  "state":"watching","message":null,"notCovered":0,
  "verify":{"at":"2026-11-26T03:00:00Z","ok":true,"problems":0,"firstProblem":null,"durationSeconds":12.5}},
 "autoRestart":true,"autoRestartSuspended":false,"recentCrashes":0,"autoRestartAt":null}],
"warnings":[]}`, i%60, i%1000, i, i%60, (i+59)%60, i%7, i%13, i*4096)
}

// realisticBodies are 64 answers that differ as successive polls' do.
func realisticBodies() [][]byte {
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = realistic(i)
	}
	return bodies
}

func BenchmarkParse(b *testing.B) {
	bodies := realisticBodies()
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Parse(bodies[i%len(bodies)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkUnmarshalFloor is encoding/json into the same struct with no checks: the floor.
func BenchmarkUnmarshalFloor(b *testing.B) {
	bodies := realisticBodies()
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var st Status
		if err := json.Unmarshal(bodies[i%len(bodies)], &st); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
