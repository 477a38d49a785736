package response

import (
	"strings"
	"testing"
)

// status builds an answer from the example in docs/agent.md, with edits.
func status(edit func(s string) string) []byte {
	s := `{
  "apiVersion": "v1", "time": "2026-11-26T04:23:58.477Z", "future": {"ignored": true},
  "agent": { "id": "a4c1", "version": "0.1.0", "hostname": "db1", "startedAt": "2026-11-26T04:00:00Z", "pid": 812 },
  "cluster": { "name": "sql-ha", "node": "node-a", "role": "active", "roleReadAt": "2026-11-26T04:23:58Z" },
  "processes": [
    { "name": "cdp", "kind": "command", "state": "running", "expected": true, "pid": 19966, "generation": 4,
      "startedAt": "2026-11-26T04:20:00Z", "restarts": 3,
      "lastExit": { "code": null, "signal": "SIGKILL", "at": "2026-11-26T04:19:59Z" },
      "protection": null, "autoRestart": true, "autoRestartSuspended": false,
      "recentCrashes": 1, "autoRestartAt": null }
  ]
}`
	if edit != nil {
		s = edit(s)
	}
	return []byte(s)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{"the documented example, unknown keys ignored", status(nil), ""},
		{"an automatic restart scheduled", status(func(s string) string {
			return strings.Replace(s, `"autoRestartAt": null`, `"autoRestartAt": "2026-11-26T04:24:02.477Z"`, 1)
		}), ""},
		{"standalone", status(func(s string) string {
			return strings.Replace(s, `{ "name": "sql-ha", "node": "node-a", "role": "active", "roleReadAt": "2026-11-26T04:23:58Z" }`, "null", 1)
		}), ""},
		{"protection reported", status(func(s string) string {
			return strings.Replace(s, `"protection": null`, `"protection": {"lastChangeAt": null, "lastReplicatedAt": "2026-11-26T04:23:00Z", "lagSeconds": 12.5, "pendingChanges": 3, "pendingBytes": null}`, 1)
		}), ""},
		{"empty", []byte("  "), "the answer is empty"},
		{"not JSON", []byte("<html>hello</html>"), "the answer is not JSON: invalid character '<' looking for beginning of value"},
		{"two values", []byte(`{} {}`), "the answer is not JSON: more than one value"},
		{"a list", []byte(`[]`), "the answer: want an object, got a list"},
		{"missing key", status(func(s string) string { return strings.Replace(s, `"generation": 4,`, "", 1) }), "processes[0].generation: missing"},
		{"mistyped", status(func(s string) string { return strings.Replace(s, `"pid": 19966`, `"pid": "19966"`, 1) }), "processes[0].pid: want an integer, got a string"},
		{"fraction for integer", status(func(s string) string { return strings.Replace(s, `"generation": 4`, `"generation": 4.5`, 1) }), "processes[0].generation: 4.5 is not a 64-bit integer"},
		{"null where not nullable", status(func(s string) string { return strings.Replace(s, `"expected": true`, `"expected": null`, 1) }), "processes[0].expected: must not be null"},
		{"bad time", status(func(s string) string { return strings.Replace(s, `"2026-11-26T04:23:58.477Z"`, `"yesterday"`, 1) }), `time: "yesterday" is not an RFC 3339 date-time`},
		{"unknown state", status(func(s string) string { return strings.Replace(s, `"state": "running"`, `"state": "paused"`, 1) }), `processes[0].state: "paused" is not one of running, starting, stopping, stopped, crashed`},
		{"unknown role", status(func(s string) string { return strings.Replace(s, `"role": "active"`, `"role": "primary"`, 1) }), `cluster.role: "primary" is not one of active, passive, unknown`},
		{"a long bad value is cut at a character", status(func(s string) string {
			return strings.Replace(s, `"state": "running"`, `"state": "`+strings.Repeat("é", 100)+`"`, 1)
		}), `processes[0].state: "` + strings.Repeat("é", 27) + `…(truncated, 200 bytes)" is not one of running, starting, stopping, stopped, crashed`},
		{"other API version", status(func(s string) string { return strings.Replace(s, `"v1"`, `"v2"`, 1) }), `apiVersion: "v2" is not one of v1`},
		{"processes not a list", status(func(s string) string {
			i := strings.Index(s, `"processes"`)
			return s[:i] + `"processes": {}}`
		}), "processes: want a list, got an object"},
		{"too large", append(append([]byte(`{"pad":"`), make([]byte, MaxBody)...), `"}`...), "the answer is larger than 1 MiB (1048586 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Parse(tt.body)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if st.Agent.ID != "a4c1" || len(st.Processes) != 1 || st.Processes[0].Generation != 4 {
					t.Errorf("decoded %+v", st)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error\n got: %v\nwant: %s", err, tt.wantErr)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		role        string // "" = standalone
		roleError   string
		state       string
		expected    bool
		wantVerdict Verdict
		wantReason  string
	}{
		{"running where expected", "active", "", "running", true, Running, "running (pid 19966, generation 4)"},
		{"standalone running", "", "", "running", true, Running, "running (pid 19966, generation 4)"},
		{"starting", "active", "", "starting", true, Starting, "starting (generation 4)"},
		{"crashed where expected", "active", "", "crashed", true, Down, "crashed where expected (signal SIGKILL)"},
		{"stopped where expected", "", "", "stopped", true, Down, "stopped where expected (signal SIGKILL)"},
		{"stopping where expected", "active", "", "stopping", true, Down, "stopping where expected (signal SIGKILL)"},
		{"passive, stopped", "passive", "", "stopped", false, NotExpected, "not expected on passive node node-a of sql-ha (stopped)"},
		{"passive, still running", "passive", "", "running", false, RunningNotExpected, "running on passive node node-a of sql-ha, where it is not expected"},
		{"role unknown", "unknown", "cannot read role file /run/role: ENOENT", "stopped", false, RoleUnknown, "cluster role unknown: cannot read role file /run/role: ENOENT"},
		{"role unknown, running", "unknown", "", "running", false, RoleUnknown, "cluster role unknown (still running)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := status(func(s string) string {
				s = strings.Replace(s, `"state": "running"`, `"state": "`+tt.state+`"`, 1)
				if !tt.expected {
					s = strings.Replace(s, `"expected": true`, `"expected": false`, 1)
				}
				switch tt.role {
				case "":
					s = strings.Replace(s, `{ "name": "sql-ha", "node": "node-a", "role": "active", "roleReadAt": "2026-11-26T04:23:58Z" }`, "null", 1)
				default:
					re := ""
					if tt.roleError != "" {
						re = `, "roleError": "` + tt.roleError + `"`
					}
					s = strings.Replace(s, `"role": "active"`, `"role": "`+tt.role+`"`+re, 1)
				}
				return s
			})
			st, err := Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			o := Classify(st)
			p, ok := o.Process("cdp")
			if !ok {
				t.Fatal("no verdict for cdp")
			}
			if p.Verdict != tt.wantVerdict || p.Reason != tt.wantReason {
				t.Errorf("verdict %s %q, want %s %q", p.Verdict, p.Reason, tt.wantVerdict, tt.wantReason)
			}
			wantRole := tt.role
			if wantRole == "" {
				wantRole = RoleStandalone
			}
			if o.Role != wantRole {
				t.Errorf("role %q, want %q", o.Role, wantRole)
			}
		})
	}
}

func TestLagSeconds(t *testing.T) {
	st, err := Parse(status(func(s string) string {
		return strings.Replace(s, `"protection": null`, `"protection": {"lastChangeAt": null, "lastReplicatedAt": null, "lagSeconds": 95, "pendingChanges": null, "pendingBytes": null}`, 1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if lag, ok := Classify(st).Processes[0].LagSeconds(); !ok || lag != 95 {
		t.Errorf("lag = %v, %v", lag, ok)
	}
}
