package cluster

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/vigil-cdp/vigil/pkg/fleet"
)

// FromFleet turns a fleet's cluster settings and this process's own
// addresses (own: "bind", "advertise", "name", from flags or the
// environment; they win over the fleet's) into a member's configuration;
// group keeps other fleets' members apart.
func FromFleet(c *fleet.Cluster, group string, own map[string]string) (Config, error) {
	cfg := Config{Group: group, Join: c.Join, SecretKey: c.SecretKeyBytes(), Profile: c.Profile, Name: c.Name}
	bind := c.Bind
	if v := strings.TrimSpace(own["bind"]); v != "" {
		bind = v
	}
	var err error
	if bind != "" {
		if cfg.BindAddr, cfg.BindPort, err = hostPort(bind, 0); err != nil {
			return Config{}, fmt.Errorf("cluster bind address %q: %w", bind, err)
		}
		if cfg.BindPort == 0 && strings.HasSuffix(bind, ":0") {
			// Written out: any free port (tests, several members on one host).
			cfg.BindPort = AnyPort
		}
	}
	adv := c.Advertise
	if v := strings.TrimSpace(own["advertise"]); v != "" {
		adv = v
	}
	if adv != "" {
		port := cfg.BindPort
		if port == 0 {
			port = DefaultBindPort
		}
		if cfg.AdvertiseAddr, cfg.AdvertisePort, err = hostPort(adv, port); err != nil {
			return Config{}, fmt.Errorf("cluster advertise address %q: %w", adv, err)
		}
	}
	if v := strings.TrimSpace(own["name"]); v != "" {
		cfg.Name = v
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		port := cfg.AdvertisePort
		if port == 0 {
			port = cfg.BindPort
		}
		if port <= 0 {
			port = DefaultBindPort
		}
		cfg.Name = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return cfg, nil
}

// hostPort reads "host" or "host:port" (port defaulting to def).
func hostPort(s string, def int) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return s, def, nil
		}
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return host, n, nil
}
