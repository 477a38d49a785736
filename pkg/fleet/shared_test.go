package fleet

import (
	"strings"
	"testing"
)

const sharedAgents = `
agents:
  - name: a
    url: http://127.0.0.1:7070
    readToken: r
    controlToken: c
`

func TestSharedHistoryAndCluster(t *testing.T) {
	t.Setenv("VIGIL_TEST_PGPASS", "pw-from-env")
	t.Setenv("VIGIL_TEST_GOSSIP", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	cfg, err := Parse([]byte(sharedAgents + `
history:
  postgres: postgres://vigil@db.example:5432/vigil
  password: $VIGIL_TEST_PGPASS
  scope: site-a
cluster:
  join: [10.0.0.1:7946, "monitor-2:7946"]
  bind: 0.0.0.0:7946
  secretKey: ${VIGIL_TEST_GOSSIP}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.History.Postgres != "postgres://vigil@db.example:5432/vigil" || cfg.History.Password.Reveal() != "pw-from-env" || cfg.History.Scope != "site-a" {
		t.Errorf("history: %+v", cfg.History)
	}
	if !cfg.Divided() || len(cfg.Cluster.Join) != 2 || len(cfg.Cluster.SecretKeyBytes()) != 32 {
		t.Errorf("cluster: %+v", cfg.Cluster)
	}
	if strings.Contains(cfg.History.Password.String(), "pw-from-env") {
		t.Error("the password prints")
	}
}

func TestSharedKeysErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"cluster:\n  join: [a:1]\n", "cluster: dividing the agents among monitors needs a shared history: set history.postgres too"},
		{"history:\n  postgres: vigil\n", "history.postgres: is not a PostgreSQL connection string"},
		{"history:\n  postgres: postgres://h/db\ncluster:\n  join: [nohost]\n", "cluster.join[0]: must be host:port"},
		{"history:\n  postgres: postgres://h/db\ncluster:\n  secretKey: c2hvcnQ=\n", "cluster.secretKey: must be 16, 24 or 32 bytes in base64"},
		{"history:\n  postgres: postgres://h/db\ncluster:\n  profile: wan\n", `cluster.profile: must be "lan" or "local"`},
		{"history:\n  postgress: postgres://h/db\n", "history.postgress: unknown key"},
	} {
		_, err := Parse([]byte(sharedAgents + tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}

func TestSharedKeysFromJSON(t *testing.T) {
	js := `{"agents":[{"name":"a","url":"http://127.0.0.1:7070"}],"history":{"postgres":"postgres://vigil@db:5432/vigil"},"cluster":{"join":["g1:7946"]}}`
	cfg, err := FromJSON([]byte(js), map[string]string{"readToken": "r", "history.password": "pw", "cluster.secretKey": "MDEyMzQ1Njc4OWFiY2RlZg=="})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.History.Password.Reveal() != "pw" || len(cfg.Cluster.SecretKeyBytes()) != 16 {
		t.Fatalf("%+v %+v", cfg.History, cfg.Cluster)
	}
	// A password in jsonData is not read: it belongs in secureJsonData.
	js = `{"agents":[{"name":"a","url":"http://127.0.0.1:7070"}],"history":{"postgres":"postgres://h/db","password":"plain"}}`
	if _, err := FromJSON([]byte(js), map[string]string{"readToken": "r"}); err == nil || !strings.Contains(err.Error(), "jsonData.history.password") {
		t.Fatalf("a password in jsonData: %v", err)
	}
}
