package fleet

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// SharedHistory keeps the history in PostgreSQL, shared by every monitor
// of the fleet (docs/ha.md). Unset: each monitor keeps its own (bbolt).
type SharedHistory struct {
	// Postgres is a connection string (postgres://user@host:5432/db or
	// key=value form); its password is better given apart.
	Postgres string `json:"postgres,omitempty"`
	// Password replaces the connection string's: fleet.yaml
	// history.password ($VAR) or history.passwordFile; a datasource's
	// secureJsonData "history.password".
	Password Secret `json:"-"`
	// Scope names the fleet's rows for vigil watch members (default
	// "vigil-watch"); a datasource's rows are its org, ID and UID.
	Scope string `json:"scope,omitempty"`
}

// Cluster divides the fleet's agents among monitors that share the
// history (docs/ha.md). Every member's settings but its own addresses are
// the same; those come from flags (vigil watch) or the environment (a
// Grafana replica: VIGIL_CLUSTER_BIND, VIGIL_CLUSTER_ADVERTISE,
// VIGIL_CLUSTER_NAME).
type Cluster struct {
	// Join lists members to join through (host:port); more may follow.
	Join []string `json:"join,omitempty"`
	// Bind is this member's gossip address (default 0.0.0.0:7946).
	Bind string `json:"bind,omitempty"`
	// Advertise is the address others reach it at (default: Bind's, or
	// the first private address).
	Advertise string `json:"advertise,omitempty"`
	// Name is this member's name (default: host name and port).
	Name string `json:"name,omitempty"`
	// Profile: "lan" (the default) or "local" (faster failure detection,
	// for members on one host).
	Profile string `json:"profile,omitempty"`
	// SecretKey encrypts gossip: 16, 24 or 32 bytes, base64. fleet.yaml:
	// cluster.secretKey ($VAR) or cluster.secretKeyFile; a datasource's
	// secureJsonData "cluster.secretKey".
	SecretKey Secret `json:"-"`
}

// Divided reports whether the fleet is divided among monitors.
func (c *Config) Divided() bool { return c.Cluster != nil }

func (d *decoder) sharedHistory(dst *SharedHistory) field {
	return func(n *yaml.Node, p string) {
		var pw tokenSource
		fields := map[string]field{
			"postgres": d.str(&dst.Postgres),
			"scope":    d.str(&dst.Scope),
		}
		if d.tokens {
			fields["password"] = d.str(&pw.value)
			fields["passwordFile"] = d.str(&pw.file)
		} else {
			fields["password"] = d.inSecure("history.password")
		}
		d.mapping(n, p, fields, "postgres", "scope", "password", "passwordFile")
		dst.Password = d.resolve(pw, p, "password", token{}).secret
		dst.Postgres = strings.TrimSpace(dst.Postgres)
	}
}

func (d *decoder) cluster(dst **Cluster) field {
	return func(n *yaml.Node, p string) {
		if isNull(n) {
			return
		}
		c := &Cluster{}
		var key tokenSource
		fields := map[string]field{
			"join":      d.strings(&c.Join),
			"bind":      d.str(&c.Bind),
			"advertise": d.str(&c.Advertise),
			"name":      d.str(&c.Name),
			"profile":   d.str(&c.Profile),
		}
		if d.tokens {
			fields["secretKey"] = d.str(&key.value)
			fields["secretKeyFile"] = d.str(&key.file)
		} else {
			fields["secretKey"] = d.inSecure("cluster.secretKey")
		}
		d.mapping(n, p, fields, "join", "bind", "advertise", "name", "profile", "secretKey", "secretKeyFile")
		c.SecretKey = d.resolve(key, p, "secretKey", token{}).secret
		*dst = c
	}
}

// inSecure refuses a secret written in jsonData, which Grafana keeps in
// clear and sends to the browser.
func (d *decoder) inSecure(key string) field {
	return func(n *yaml.Node, p string) {
		d.fail(p, "belongs in secureJsonData (%q), which Grafana encrypts and never sends to the browser", key)
	}
}

// validateShared checks the history and cluster keys.
func (c *Config) validateShared(prefix string) []error {
	var errs []error
	fail := func(field, msg string) { errs = append(errs, &FieldError{Field: prefix + field, Message: msg}) }
	if c.History.Postgres != "" && !strings.Contains(c.History.Postgres, "://") && !strings.Contains(c.History.Postgres, "=") {
		fail("history.postgres", "is not a PostgreSQL connection string: write postgres://user@host:5432/database or host=... dbname=...")
	}
	if c.Cluster == nil {
		return errs
	}
	if c.History.Postgres == "" {
		fail("cluster", "dividing the agents among monitors needs a shared history: set history.postgres too")
	}
	for i, j := range c.Cluster.Join {
		if _, _, err := splitHostPort(j); err != nil {
			fail("cluster.join["+strconv.Itoa(i)+"]", "must be host:port: "+err.Error())
		}
	}
	for _, a := range []struct{ key, v string }{{"cluster.bind", c.Cluster.Bind}, {"cluster.advertise", c.Cluster.Advertise}} {
		if a.v != "" {
			if _, _, err := splitHostPort(a.v); err != nil {
				fail(a.key, "must be host:port: "+err.Error())
			}
		}
	}
	switch c.Cluster.Profile {
	case "", "lan", "local":
	default:
		fail("cluster.profile", `must be "lan" or "local"`)
	}
	if k := c.Cluster.SecretKey; k.IsSet() {
		raw, err := base64.StdEncoding.DecodeString(k.Reveal())
		if err != nil || (len(raw) != 16 && len(raw) != 24 && len(raw) != 32) {
			fail("cluster.secretKey", "must be 16, 24 or 32 bytes in base64 (openssl rand -base64 32)")
		}
	}
	return errs
}

func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, &FieldError{Field: "port", Message: "must be a number from 0 to 65535"}
	}
	return host, n, nil
}

// SecretKeyBytes is the decoded gossip key (nil when none).
func (c *Cluster) SecretKeyBytes() []byte {
	if c == nil || !c.SecretKey.IsSet() {
		return nil
	}
	raw, _ := base64.StdEncoding.DecodeString(c.SecretKey.Reveal())
	return raw
}
