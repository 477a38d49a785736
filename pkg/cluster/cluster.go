// Package cluster divides the polling of agents among several Vigil monitor
// processes: the Grafana replicas serving one datasource, or the members of
// one `vigil watch` fleet. Each agent is polled and judged by exactly one
// live member, so a fleet is not polled once per replica and an automatic
// restart is not asked for twice.
//
// Members find each other by gossip (hashicorp/memberlist, SWIM failure
// detection). A member counts only if it carries the same Group in its node
// metadata; members of another group may share the gossip network and are
// ignored. The owner of an agent is chosen by rendezvous hashing
// (Rendezvous) over the live members of the group. The key is the caller's
// choice: the agent's cluster when it has one, so that both nodes of a
// failover pair are judged by one member that sees the whole pair, else the
// agent's name. When a member joins, leaves or dies, Changes fires; only the
// keys of the member that left move, and a member that joins takes about
// 1/n of the keys from the others.
//
// Before a member reaches any seed (Config.Join), or while a network
// partition cuts it off from the others, it sees only the members on its
// side, and they divide every agent among themselves: each side of a
// partition polls every agent. Agents are then polled twice, which costs
// requests but is safe: a restart is asked for with the generation the
// member saw (ifGeneration) and the agent refuses any but its current one
// (the generation guard, 409 stale_generation), so two members asking to
// restart the same run produce one restart. Seeds are contacted again
// every 30 s, so the sides of a healed partition merge again without
// anyone restarting.
//
// Failure detection. A member that leaves (Leave) tells the others, who
// drop it at once (0.4 s measured). A member that crashes is noticed by
// probing: with the default "lan" profile each member probes another one
// every second (500 ms answer timeout, then indirect probes through other
// members); a member that fails a probe is suspected, and declared dead
// once the suspicion time has passed: 4 s × max(1, log10 n) for n members,
// up to six times longer while too few other members confirm the
// suspicion. Measured on loopback with three to six members, the others
// drop a crashed member 6 to 7 s after the crash. The "local" profile
// (200 ms answer timeout, 3 s × max(1, log10 n) suspicion) drops it after
// 5 to 6 s.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	// DefaultBindAddr is the address listened on when Config.BindAddr is empty.
	DefaultBindAddr = "0.0.0.0"
	// DefaultBindPort is memberlist's usual port, used when Config.BindPort is 0.
	DefaultBindPort = 7946
	// AnyPort as Config.BindPort asks the system for a free port (tests).
	AnyPort = -1

	// ProfileLAN is memberlist's LAN timing, the default.
	ProfileLAN = "lan"
	// ProfileLocal is memberlist's local timing: quicker failure detection
	// for members on one host or one fast network.
	ProfileLocal = "local"

	// defaultJoinRetry is how often the seeds are tried while none has answered.
	defaultJoinRetry = 2 * time.Second
	// rejoinInterval is how often the seeds are contacted again once joined,
	// which is what merges the two sides of a healed partition: memberlist
	// alone stops talking to members it declared dead after 30 s.
	rejoinInterval = 30 * time.Second
	// joinWarnAfter is how long a member may stay alone, seeds configured but
	// none answering, before that is worth a warning (the first member of a
	// group to start is alone for a while, normally).
	joinWarnAfter = time.Minute
	// deadNodeReclaim lets a member restarted under the same name but at a new
	// address (a Kubernetes StatefulSet pod) join without waiting for its old
	// self to be forgotten.
	deadNodeReclaim = 10 * time.Second
)

// metaPrefix starts the node metadata of every Vigil member, followed by the
// group. Nodes whose metadata does not start with it are not Vigil members.
const metaPrefix = "vigil.cluster/1 "

// MaxGroupLen is the longest Group: memberlist limits node metadata to
// 512 bytes and the metadata is metaPrefix + Group.
const MaxGroupLen = memberlist.MetaMaxSize - len(metaPrefix)

// Config of one member.
type Config struct {
	// Name is this member's unique name within the gossip network (default:
	// hostname + ":" + the bound port). Ownership is computed from names, so
	// a member restarted under the same name takes back the same agents.
	Name string
	// Group: only members with the same group count (e.g. a datasource
	// identity "org 1 / id 5 / uid abc", or a vigil watch fleet's name); it
	// is carried in memberlist node metadata (at most MaxGroupLen bytes).
	// Members of another group are ignored (not counted as members, never
	// own anything here) and a warning is logged once per such member.
	// Required.
	Group string
	// BindAddr is the IP address listened on, TCP and UDP (default
	// "0.0.0.0"; then the address told to others is a private IP of this
	// host, unless AdvertiseAddr is set).
	BindAddr string
	// BindPort is the port listened on, TCP and UDP: 0 means the default
	// 7946; AnyPort (-1) means any free port (tests; see Cluster.Addr).
	BindPort int
	// AdvertiseAddr is the IP address other members are told to use, when it
	// differs from the bound one (NAT, containers). Optional.
	AdvertiseAddr string
	// AdvertisePort goes with AdvertiseAddr (default: the bound port).
	AdvertisePort int
	// Join lists seed members, "host:port" (a host name may resolve to
	// several members). Joining retries in the background every few seconds
	// until a seed answers, so the member that starts first does not fail;
	// listing this member itself among the seeds is fine. Empty: this member
	// waits for others to join it.
	Join []string
	// SecretKey encrypts and authenticates gossip (16, 24 or 32 bytes: AES-128,
	// -192 or -256). All members of a gossip network need the same key; a
	// member with another key, or none, cannot join. Empty: no encryption (a
	// warning is logged once).
	SecretKey []byte
	// Logger receives this package's messages; memberlist's own log lines go
	// to it at debug level. Nil: nothing is logged.
	Logger *slog.Logger
	// Profile is the timing of failure detection: "lan" (the default) or
	// "local"; see the package documentation for what each means in seconds.
	Profile string

	// joinRetry overrides defaultJoinRetry (tests).
	joinRetry time.Duration
}

// FieldError is a configuration error: which field, what is wrong with it.
type FieldError struct {
	Field   string // as in a settings file: "cluster.secretKey"
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: "cluster." + field, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks the configuration as given (before defaults). Every problem
// is reported, each as a *FieldError, joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Group) == "" {
		errs = append(errs, fieldErr("group", "must not be empty: members share agents only within one group"))
	} else if len(c.Group) > MaxGroupLen {
		errs = append(errs, fieldErr("group", "at most %d bytes, got %d", MaxGroupLen, len(c.Group)))
	}
	if c.Name != "" && strings.TrimSpace(c.Name) != c.Name {
		errs = append(errs, fieldErr("name", "must not start or end with spaces, got %q", c.Name))
	}
	if c.BindAddr != "" {
		if ip := net.ParseIP(c.BindAddr); ip == nil {
			errs = append(errs, fieldErr("bindAddr", "must be an IP address, got %q", c.BindAddr))
		} else if ip.IsUnspecified() && c.BindAddr != DefaultBindAddr && c.AdvertiseAddr == "" {
			// Only for 0.0.0.0 does memberlist look for an address to advertise.
			errs = append(errs, fieldErr("bindAddr", "%q needs advertiseAddr (the address other members reach this one at); or use %s", c.BindAddr, DefaultBindAddr))
		}
	}
	if c.BindPort < AnyPort || c.BindPort > 65535 {
		errs = append(errs, fieldErr("bindPort", "must be 1 to 65535 (0: the default %d, -1: any free port), got %d", DefaultBindPort, c.BindPort))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fieldErr("advertiseAddr", "must be an IP address, got %q", c.AdvertiseAddr))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fieldErr("advertisePort", "must be 1 to 65535 (0: the bound port), got %d", c.AdvertisePort))
	} else if c.AdvertisePort != 0 && c.AdvertiseAddr == "" {
		errs = append(errs, fieldErr("advertisePort", "is used only with advertiseAddr, which is empty"))
	}
	for i, seed := range c.Join {
		if err := checkSeed(seed); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("join[%d]", i), "%v", err))
		}
	}
	switch n := len(c.SecretKey); n {
	case 0, 16, 24, 32:
	default:
		errs = append(errs, fieldErr("secretKey", "must be 16, 24 or 32 bytes, got %d", n))
	}
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
	default:
		errs = append(errs, fieldErr("profile", "must be %q or %q, got %q", ProfileLAN, ProfileLocal, c.Profile))
	}
	return errors.Join(errs...)
}

func checkSeed(seed string) error {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", seed)
	}
	if host == "" {
		return fmt.Errorf("has no host, got %q", seed)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port must be 1 to 65535, got %q", seed)
	}
	return nil
}

// Member is a live member of this member's group.
type Member struct {
	Name string
	Addr string // host:port
}

// Cluster is this process's membership in a group. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg     Config // with defaults applied
	self    string
	addr    string
	log     *slog.Logger
	meta    []byte
	ml      *memberlist.Memberlist
	changes chan struct{}

	mu      sync.Mutex
	inGroup map[string]bool // members of the group known to the event delegate
	warned  map[string]bool // members of other groups already warned about

	stopJoin chan struct{}
	joinDone chan struct{}

	shutdownMu sync.Mutex
	shut       atomic.Bool
}

// Start creates this member: it listens, then joins the seeds in the
// background (Start does not wait for them). Close or Leave it when done.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if cfg.BindPort == 0 {
		cfg.BindPort = DefaultBindPort
	}
	if cfg.Profile == "" {
		cfg.Profile = ProfileLAN
	}
	if cfg.joinRetry <= 0 {
		cfg.joinRetry = defaultJoinRetry
	}

	mlLog := log.New(logWriter{logger}, "", 0)
	tr, err := listen(cfg.BindAddr, cfg.BindPort, mlLog)
	if err != nil {
		return nil, err
	}
	port := tr.GetAutoBindPort()
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			_ = tr.Shutdown()
			return nil, fieldErr("name", "not set, and the host name to default it to is unknown (%v): set a name unique to this member", err)
		}
		cfg.Name = host + ":" + strconv.Itoa(port)
	}
	if cfg.AdvertiseAddr != "" && cfg.AdvertisePort == 0 {
		cfg.AdvertisePort = port
	}

	c := &Cluster{
		cfg:      cfg,
		self:     cfg.Name,
		log:      logger,
		meta:     []byte(metaPrefix + cfg.Group),
		changes:  make(chan struct{}, 1),
		inGroup:  map[string]bool{},
		warned:   map[string]bool{},
		stopJoin: make(chan struct{}),
		joinDone: make(chan struct{}),
	}

	var mc *memberlist.Config
	if cfg.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = port // also the port of a seed given without one
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.Transport = tr
	mc.Logger = mlLog
	mc.Delegate = metaDelegate{c.meta}
	mc.Events = events{c}
	mc.Conflict = conflicts{c}
	mc.DeadNodeReclaimTime = deadNodeReclaim
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(cfg.SecretKey)
	}

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		if strings.Contains(err.Error(), "advertise address") {
			return nil, fieldErr("advertiseAddr", "not set, and no private IP address of this host to tell other members (%v): set advertiseAddr, or bindAddr to a specific address", err)
		}
		return nil, fmt.Errorf("cluster: cannot start the membership: %w", err)
	}
	c.ml = ml
	local := ml.LocalNode()
	c.addr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))

	if len(cfg.SecretKey) == 0 {
		logger.Warn("cluster gossip is not encrypted: any host that reaches the gossip port can join the group and take agents; set a secret key",
			"member", c.self, "group", cfg.Group)
	}
	logger.Info("cluster member started", "member", c.self, "group", cfg.Group, "addr", c.addr, "seeds", cfg.Join, "profile", cfg.Profile)

	if len(cfg.Join) > 0 {
		go c.joinLoop()
	} else {
		close(c.joinDone)
	}
	return c, nil
}

// listen opens the TCP and UDP listeners, both on one port. With any free
// port, the port the kernel picks for TCP may be taken for UDP: retry a few
// times, as memberlist itself does.
func listen(addr string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: logger}
	if port == AnyPort {
		nc.BindPort = 0
	}
	tries := 1
	if nc.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var tr *memberlist.NetTransport
		if tr, err = memberlist.NewNetTransport(nc); err == nil {
			return tr, nil
		}
	}
	where := net.JoinHostPort(addr, strconv.Itoa(port))
	if port == AnyPort {
		where = net.JoinHostPort(addr, "any")
	}
	return nil, fieldErr("bindPort", "cannot listen on %s (TCP and UDP): %v; choose a free port or check bindAddr", where, err)
}

// Self returns this member's name.
func (c *Cluster) Self() string { return c.self }

// Addr returns the host:port other members reach this member at: the
// advertised address, with the port actually bound (useful with AnyPort;
// with BindAddr 0.0.0.0 the host is the private IP memberlist chose).
func (c *Cluster) Addr() string { return c.addr }

// Members returns the live members of this group, sorted by name, this
// member included. A member suspected but not yet declared dead is still
// live. After Leave or Close it is empty.
func (c *Cluster) Members() []Member {
	if c.shut.Load() {
		return nil
	}
	var out []Member
	for _, n := range c.ml.Members() {
		if g, ok := parseMeta(n.Meta); ok && g == c.cfg.Group {
			out = append(out, Member{Name: n.Name, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Owner returns the name of the live member owning key: Rendezvous over the
// names of Members. "" after Leave or Close.
func (c *Cluster) Owner(key string) string {
	ms := c.Members()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return Rendezvous(key, names)
}

// Owns says whether this member owns key.
func (c *Cluster) Owns(key string) bool { return c.Owner(key) == c.self }

// Changes receives after every join, leave, death or update of a member of
// this group (a non-blocking send into a buffer of one, so several changes
// may be seen as one): the moment to compute owners again. It is never
// closed.
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// Leave tells the other members that this one is going, so they take over
// its agents at once instead of after failure detection, then shuts down.
// It waits at most timeout for the message to go out (0: no limit), after a
// join attempt in progress, as Close does. Calling it after Leave or Close
// does nothing.
func (c *Cluster) Leave(timeout time.Duration) error {
	return c.shutdown(func() error {
		if err := c.ml.Leave(timeout); err != nil {
			return fmt.Errorf("cluster: the leave message was not sent within %s (%v); the other members take over after failure detection", timeout, err)
		}
		c.log.Info("cluster member left", "member", c.self, "group", c.cfg.Group)
		return nil
	})
}

// Close shuts down without telling the others: to them this looks like a
// crash (apart from the sockets closing) and they take over its agents
// after failure detection. Calling it after Leave or Close does nothing.
//
// Close waits for a join attempt in progress, which is quick unless a seed
// does not answer at all: then up to memberlist's TCP timeout (10 s with
// the "lan" profile, 1 s with "local").
func (c *Cluster) Close() error {
	return c.shutdown(nil)
}

func (c *Cluster) shutdown(leave func() error) error {
	c.shutdownMu.Lock()
	defer c.shutdownMu.Unlock()
	if c.shut.Load() {
		return nil
	}
	// The joiner must not join again after the leave message, which would
	// bring this member back to life in the others' eyes.
	select {
	case <-c.joinDone:
	default:
		close(c.stopJoin)
		<-c.joinDone
	}
	var err error
	if leave != nil {
		err = leave()
	}
	c.shut.Store(true)
	if serr := c.ml.Shutdown(); serr != nil {
		err = errors.Join(err, fmt.Errorf("cluster: shut down: %w", serr))
	}
	return err
}

// joinLoop contacts the seeds until one answers, every joinRetry, then
// again every rejoinInterval to merge the sides of a healed partition.
func (c *Cluster) joinLoop() {
	defer close(c.joinDone)
	start := time.Now()
	joined, warned := false, false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.stopJoin:
			return
		case <-timer.C:
		}
		ok, err := c.joinSeeds()
		switch {
		case ok && !joined:
			joined = true
			c.log.Info("cluster member joined its seeds", "member", c.self, "members", len(c.Members()))
		case !ok && !joined && !warned && time.Since(start) >= joinWarnAfter:
			warned = true
			c.log.Warn("no cluster seed has answered yet; this member owns every agent until one does (check cluster.join and the secret key)",
				"member", c.self, "seeds", c.cfg.Join, "waited", time.Since(start).Round(time.Second), "error", err)
		}
		wait := c.cfg.joinRetry
		if ok {
			wait = rejoinInterval
		}
		timer.Reset(wait)
	}
}

// joinSeeds tries each seed in turn (so that Close need not wait for all of
// them) and says whether this member now knows another one. A seed that is
// this member itself answers, but joins nothing.
func (c *Cluster) joinSeeds() (bool, error) {
	var errs []error
	for _, seed := range c.cfg.Join {
		select {
		case <-c.stopJoin:
			return false, nil
		default:
		}
		if _, err := c.ml.Join([]string{seed}); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	ok := c.ml.NumMembers() > 1
	if !ok {
		c.log.Debug("no cluster seed answered", "member", c.self, "error", err)
	}
	return ok, err
}

// signal sends on changes without blocking.
func (c *Cluster) signal() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// observe is called by memberlist for every event, with its node lock held:
// it must not call back into memberlist.
func (c *Cluster) observe(n *memberlist.Node, gone bool) {
	group, vigil := parseMeta(n.Meta)
	mine := vigil && group == c.cfg.Group
	c.mu.Lock()
	was := c.inGroup[n.Name]
	warn := false
	switch {
	case gone || !mine:
		delete(c.inGroup, n.Name)
		if !gone && !c.warned[n.Name] {
			c.warned[n.Name] = true
			warn = true
		}
	default:
		c.inGroup[n.Name] = true
	}
	c.mu.Unlock()
	if warn {
		addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
		if vigil {
			c.log.Warn("ignoring a cluster member of another group: it shares the gossip network (same seeds or port) but not the agents",
				"member", c.self, "group", c.cfg.Group, "other", n.Name, "otherAddr", addr, "otherGroup", group)
		} else {
			c.log.Warn("ignoring a gossip member that is not a Vigil monitor: another program uses the same seeds or port",
				"member", c.self, "other", n.Name, "otherAddr", addr)
		}
	}
	if mine || was {
		c.signal()
	}
}

// parseMeta returns the group in a node's metadata, and whether the node is
// a Vigil member at all.
func parseMeta(meta []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(meta, []byte(metaPrefix))
	return string(rest), ok
}

// metaDelegate gives memberlist this member's metadata; the rest of the
// Delegate interface (user messages and state) is unused.
type metaDelegate struct{ meta []byte }

func (d metaDelegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit { // cannot happen: Validate bounds the group
		return nil
	}
	return d.meta
}
func (metaDelegate) NotifyMsg([]byte)                {}
func (metaDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (metaDelegate) LocalState(bool) []byte          { return nil }
func (metaDelegate) MergeRemoteState([]byte, bool)   {}

type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.observe(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.c.observe(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.observe(n, false) }

// conflicts reports two members with one name: memberlist keeps the first
// and ignores the other, which then owns agents it is never told about.
type conflicts struct{ c *Cluster }

func (k conflicts) NotifyConflict(existing, other *memberlist.Node) {
	k.c.log.Warn("two cluster members have the same name; the second is ignored: give each member a unique cluster name",
		"member", k.c.self, "name", existing.Name, "addr", existing.Address(), "otherAddr", other.Address())
}

var (
	_ memberlist.Delegate         = metaDelegate{}
	_ memberlist.EventDelegate    = events{}
	_ memberlist.ConflictDelegate = conflicts{}
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// debug records: they are about gossip internals and memberlist logs a
// routine member death as an error; what matters to an operator is logged
// by this package.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if !w.l.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := strings.TrimSpace(string(p))
	level := ""
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if lv, msg, ok := strings.Cut(rest, "]"); ok {
			level, line = lv, strings.TrimSpace(msg)
		}
	}
	w.l.Debug(line, "memberlistLevel", level)
	return len(p), nil
}
