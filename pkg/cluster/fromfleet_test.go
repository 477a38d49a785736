package cluster

import (
	"strings"
	"testing"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

func TestFromFleet(t *testing.T) {
	c := &fleet.Cluster{Join: []string{"10.0.0.1:7946"}, Bind: "0.0.0.0:7950", Profile: "local"}
	cfg, err := FromFleet(c, "org 1", map[string]string{"advertise": "10.0.0.2", "name": "grafana-2"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BindAddr != "0.0.0.0" || cfg.BindPort != 7950 || cfg.AdvertiseAddr != "10.0.0.2" || cfg.AdvertisePort != 7950 ||
		cfg.Name != "grafana-2" || cfg.Group != "org 1" || cfg.Profile != "local" {
		t.Fatalf("%+v", cfg)
	}
	// The process's own bind wins over the fleet's; ":0" is any free port.
	cfg, _ = FromFleet(c, "g", map[string]string{"bind": "127.0.0.1:0"})
	if cfg.BindAddr != "127.0.0.1" || cfg.BindPort != AnyPort || !strings.HasSuffix(cfg.Name, ":7946") {
		t.Fatalf("%+v", cfg)
	}
	if _, err := FromFleet(c, "g", map[string]string{"advertise": "10.0.0.2:99999"}); err == nil || !strings.Contains(err.Error(), "cluster advertise address") {
		t.Fatalf("a bad port: %v", err)
	}
}
