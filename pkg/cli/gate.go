package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/response"
)

// Exit codes of "vigil gate" (a backup product stops its job on any
// non-zero exit of its pre-job script).
const (
	GateProtected    = 0
	GateNotProtected = 1
	// GateUsage is ExitUsage: bad flags or a bad fleet file.
	GateUsage = ExitUsage
)

// gateOptions are the flags of "vigil gate".
type gateOptions struct {
	agentURL    string
	token       string
	control     string
	timeout     time.Duration
	config      string
	names       []string
	clusters    []string
	processes   []string
	rpo         time.Duration
	rpoSet      bool
	wait        time.Duration
	every       time.Duration
	restart     bool
	quiet       bool
	requestedBy string
}

// gateTarget is one agent the gate asks.
type gateTarget struct {
	agent agentclient.Agent
	// cluster is the configured cluster (the agent reports its own too).
	cluster string
	rpo     time.Duration
	// maybe: asked only because its cluster is not configured (it may
	// report one that --cluster names).
	maybe bool
}

// gateAnswer is what one target said right now.
type gateAnswer struct {
	target gateTarget
	obs    response.Observation
	err    error
}

// gateLine is one verdict line: an agent, a process ("" for the agent
// itself) and why.
type gateLine struct {
	OK bool
	// Note: a failure that does not count, because another node of its
	// cluster runs the process.
	Note    bool
	Agent   string
	Process string
	Why     string
}

func (l gateLine) String() string {
	word := "FAIL"
	switch {
	case l.Note:
		word = "NOTE"
	case l.OK:
		word = "OK  "
	}
	who := l.Agent
	if l.Process != "" {
		who += " " + l.Process
	}
	return nagiosText(fmt.Sprintf("%s %s: %s", word, who, l.Why))
}

// gateVerdict is the judgement of one round: the lines, and the processes
// a restart could bring back (expected here, not running).
type gateVerdict struct {
	Lines     []gateLine
	Protected bool
	// Checked counts the processes judged protected or not.
	Checked, Failing int
	Restartable      []gateRestart
}

type gateRestart struct {
	target     gateTarget
	process    string
	generation int64
}

// stringList is a flag given several times or as a comma-separated list.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

func runGate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil gate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var o gateOptions
	var tokenFile, controlFile string
	var names, clusters, processes stringList
	fs.StringVar(&o.agentURL, "agent", "", "the agent's base URL, e.g. http://10.0.0.5:7070 (or --config)")
	fs.StringVar(&o.token, "token", "", "the agent's read token (visible to other users in the process list: prefer --token-file or VIGIL_READ_TOKEN)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the agent's read token")
	fs.StringVar(&controlFile, "control-token-file", "", "with --agent and --restart: file holding the agent's control token (or VIGIL_CONTROL_TOKEN)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long to wait for each agent's answer")
	fs.StringVar(&o.config, "config", "", "a fleet file: check its agents (all, or those --name and --cluster select) with its tokens and RPO")
	fs.Var(&names, "name", "with --config: an agent to check (repeat, or a comma-separated list)")
	fs.Var(&clusters, "cluster", "with --config: every agent of this cluster (repeat, or a comma-separated list); CDP must run on one of its nodes")
	fs.Var(&processes, "process", "check only these processes (repeat, or a comma-separated list; default: every process)")
	fs.DurationVar(&o.rpo, "rpo", fleet.DefaultPolicy().RPO, "protection lag above which CDP does not protect (0: no lag check; with --config: the fleet's rpo unless given)")
	fs.DurationVar(&o.wait, "wait", 0, "wait up to this long for CDP to protect again (0: check once; with --restart: 2m unless given)")
	fs.DurationVar(&o.every, "every", 5*time.Second, "while waiting, how often to ask again")
	fs.BoolVar(&o.restart, "restart", false, "first ask the agent to restart each process that is down where it should run (needs the control token)")
	fs.BoolVar(&o.quiet, "quiet", false, "print only what fails")
	fs.StringVar(&o.requestedBy, "requested-by", "", "who the agent records as asking for a restart (default: vigil gate, user@host)")
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: vigil gate (--agent URL | --config FLEET [--name N] [--cluster C]) [flags]\n\n"+
			"Exit 0 when CDP runs where it should and its protection lag is within the RPO, 1 when not\n"+
			"(a line per agent and process says why), 2 for bad flags or a bad fleet file.\n\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return ExitOK
		}
		fmt.Fprintf(stderr, "vigil gate: %s\n", printable(err.Error()))
		printUsage(stderr)
		return GateUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "vigil gate: %s\n", printable(fmt.Sprintf(format, a...)))
		return GateUsage
	}
	waitSet := false
	fs.Visit(func(f *flag.Flag) {
		o.rpoSet = o.rpoSet || f.Name == "rpo"
		waitSet = waitSet || f.Name == "wait"
	})
	o.names, o.clusters, o.processes = names, clusters, processes
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.agentURL == "" && o.config == "":
		return usageErr("give --agent URL or --config FLEET")
	case o.agentURL != "" && o.config != "":
		return usageErr("give --agent URL or --config FLEET, not both")
	case o.agentURL != "" && (len(names) > 0 || len(clusters) > 0):
		return usageErr("--name and --cluster select agents of --config FLEET")
	case o.config != "" && (o.token != "" || tokenFile != "" || controlFile != ""):
		return usageErr("with --config the fleet file gives each agent's tokens; --token, --token-file and --control-token-file go with --agent")
	case o.timeout <= 0:
		return usageErr("--timeout must be positive")
	case o.rpo < 0:
		return usageErr("--rpo must not be negative")
	case o.wait < 0:
		return usageErr("--wait must not be negative")
	case o.every <= 0:
		return usageErr("--every must be positive")
	}
	if o.restart && !waitSet {
		o.wait = 2 * time.Minute
	}
	if o.requestedBy == "" {
		o.requestedBy = "vigil gate"
		if who := whoami(); who != "" {
			o.requestedBy += " (" + who + ")"
		}
	}

	var targets []gateTarget
	if o.agentURL != "" {
		if problem, secretsPlace := fleet.AgentURLProblem(o.agentURL); secretsPlace {
			return usageErr("--agent: %s; give the read token with --token-file or VIGIL_READ_TOKEN", problem)
		} else if problem != "" {
			return usageErr("--agent: %q is not an absolute http or https URL", o.agentURL)
		}
		if o.token != "" && tokenFile != "" {
			return usageErr("give --token or --token-file, not both")
		}
		if tokenFile != "" {
			tok, err := readTokenFile(tokenFile)
			if err != nil {
				return usageErr("--token-file: %v", err)
			}
			o.token = tok
		}
		if o.token == "" {
			o.token = os.Getenv("VIGIL_READ_TOKEN")
		}
		if controlFile != "" {
			tok, err := readTokenFile(controlFile)
			if err != nil {
				return usageErr("--control-token-file: %v", err)
			}
			o.control = tok
		}
		if o.control == "" {
			o.control = os.Getenv("VIGIL_CONTROL_TOKEN")
		}
		targets = []gateTarget{{agent: agentclient.Agent{Name: o.agentURL, URL: o.agentURL, ReadToken: o.token, ControlToken: o.control}, rpo: o.rpo}}
	} else {
		cfg, err := fleet.Load(o.config)
		if err != nil {
			return usageErr("%v", err)
		}
		targets, err = gateSelect(cfg, o)
		if err != nil {
			return usageErr("%v", err)
		}
	}

	client := agentclient.New(nil)
	defer client.Close()
	return gate(ctx, client, targets, o, stdout, stderr)
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}

func whoami() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name != "" && host != "":
		return name + "@" + host
	case host != "":
		return host
	}
	return name
}

// gateSelect picks the fleet's agents that --name and --cluster name (all
// when neither is given). An agent whose cluster is not configured is
// asked too when --cluster is given: it may report that cluster itself.
func gateSelect(cfg fleet.Config, o gateOptions) ([]gateTarget, error) {
	target := func(a fleet.Agent) gateTarget {
		rpo := a.RPO
		if o.rpoSet {
			rpo = o.rpo
		}
		return gateTarget{agent: agentclient.Agent{Name: a.Name, URL: a.URL, ReadToken: a.ReadToken.Reveal(), ControlToken: a.ControlToken.Reveal()},
			cluster: a.Cluster, rpo: rpo}
	}
	var out []gateTarget
	if len(o.names) == 0 && len(o.clusters) == 0 {
		for _, a := range cfg.Agents {
			out = append(out, target(a))
		}
		return out, nil
	}
	for _, n := range o.names {
		a, ok := cfg.Agent(n)
		if !ok {
			var known []string
			for _, a := range cfg.Agents {
				known = append(known, a.Name)
			}
			return nil, fmt.Errorf("--name: no agent %q in %s (it has %s)", n, o.config, strings.Join(known, ", "))
		}
		out = append(out, target(a))
	}
	for _, a := range cfg.Agents {
		if slices.Contains(o.names, a.Name) {
			continue
		}
		switch {
		case slices.Contains(o.clusters, a.Cluster):
			out = append(out, target(a))
		case a.Cluster == "" && len(o.clusters) > 0:
			t := target(a)
			t.maybe = true
			out = append(out, t)
		}
	}
	return out, nil
}

// gate asks every target, restarts once if asked to, and waits if asked to,
// until CDP protects or the wait is over.
func gate(ctx context.Context, client agentclient.API, targets []gateTarget, o gateOptions, stdout, stderr io.Writer) int {
	deadline := time.Now().Add(o.wait)
	restarted := false
	lastWaiting := ""
	for {
		answers := gateAsk(ctx, client, targets, o.timeout)
		v := judgeGate(answers, o.clusters, o.processes)
		if !v.Protected && o.restart && !restarted {
			restarted = true
			for _, r := range v.Restartable {
				fmt.Fprintln(stdout, gateRestartOnce(ctx, client, r, o))
			}
			if len(v.Restartable) > 0 {
				continue
			}
		}
		if v.Protected || !time.Now().Before(deadline) || ctx.Err() != nil {
			gatePrint(v, o, stdout)
			if v.Protected {
				return GateProtected
			}
			return GateNotProtected
		}
		if waiting := gateFailing(v); waiting != lastWaiting {
			lastWaiting = waiting
			fmt.Fprintf(stderr, "vigil gate: waiting until %s for: %s\n", deadline.Format(time.TimeOnly), waiting)
		}
		pause := min(o.every, time.Until(deadline))
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func gateFailing(v gateVerdict) string {
	var parts []string
	for _, l := range v.Lines {
		if !l.OK && !l.Note {
			parts = append(parts, strings.TrimPrefix(l.String(), "FAIL "))
		}
	}
	return strings.Join(parts, "; ")
}

func gatePrint(v gateVerdict, o gateOptions, w io.Writer) {
	for _, l := range v.Lines {
		if (!l.OK && !l.Note) || !o.quiet {
			fmt.Fprintln(w, l)
		}
	}
	switch {
	case v.Protected && !o.quiet:
		fmt.Fprintf(w, "vigil gate: CDP protects (%d process%s checked)\n", v.Checked, plural(v.Checked, "es"))
	case !v.Protected:
		fmt.Fprintf(w, "vigil gate: CDP does not protect: %d of %d failing (stop the job)\n", v.Failing, max(v.Checked, v.Failing))
	}
}

func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}

// gateAsk polls every target at once.
func gateAsk(ctx context.Context, client agentclient.API, targets []gateTarget, timeout time.Duration) []gateAnswer {
	out := make([]gateAnswer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i].target = t
			ans, err := client.Status(ctx, t.agent)
			if err != nil {
				out[i].err = err
				return
			}
			st, err := response.Parse(ans.Body)
			if err != nil {
				out[i].err = fmt.Errorf("its answer cannot be understood: %w", err)
				return
			}
			out[i].obs = response.Classify(st)
		}()
	}
	wg.Wait()
	return out
}

// gateRestartOnce asks for one restart, guarded by the generation seen.
func gateRestartOnce(ctx context.Context, client agentclient.API, r gateRestart, o gateOptions) string {
	who := r.target.agent.Name + " " + r.process
	if r.target.agent.ControlToken == "" {
		return nagiosText("RESTART " + who + ": not asked: no control token (--control-token-file or VIGIL_CONTROL_TOKEN; in a fleet file, the agent's controlToken)")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	gen := r.generation
	res, err := client.Restart(ctx, r.target.agent, r.process, agentclient.ControlRequest{
		IfGeneration: &gen, Reason: "vigil gate: CDP was not running before a backup job", RequestedBy: o.requestedBy,
	})
	var stale *agentclient.StaleGenerationError
	switch {
	case err == nil:
		return nagiosText(fmt.Sprintf("RESTART %s: asked, generation %d -> %d", who, gen, res.Generation))
	case errors.As(err, &stale):
		return nagiosText(fmt.Sprintf("RESTART %s: not needed: someone else restarted it since generation %d (now %d)", who, gen, stale.Current))
	default:
		return nagiosText(fmt.Sprintf("RESTART %s: failed: %v", who, err))
	}
}

// judgeGate says whether CDP protects, from one round of answers.
//
// A standalone agent's process passes when it runs (or is not meant to run
// there) and its protection lag is within the RPO. A process of a cluster
// passes when one node asked runs it within the RPO; what the other nodes
// say (standing by, unreachable, a role they cannot read) is then a note.
// Only the processes named in only (when given) are judged; clusters, when
// given, keep the agents whose cluster is not configured only if they
// report one of them.
func judgeGate(answers []gateAnswer, clusters, only []string) gateVerdict {
	var v gateVerdict
	wanted := func(name string) bool { return len(only) == 0 || slices.Contains(only, name) }
	seen := map[string]bool{}
	type node struct {
		line    gateLine
		running bool
		restart *gateRestart
	}
	// cluster -> process -> what its nodes said; cluster -> silent nodes.
	byCluster := map[string]map[string][]node{}
	silent := map[string][]gateLine{}
	var maybeSilent []gateLine
	fail := func(l gateLine) {
		v.Lines = append(v.Lines, l)
		v.Failing++
	}
	for _, a := range answers {
		name := a.target.agent.Name
		cluster := a.target.cluster
		if a.err != nil {
			line := gateLine{Agent: name, Why: unreachable(a.err)}
			switch {
			case cluster != "":
				silent[cluster] = append(silent[cluster], line)
			case a.target.maybe:
				maybeSilent = append(maybeSilent, line)
			default:
				fail(line)
			}
			continue
		}
		if cluster == "" {
			cluster = a.obs.Cluster
		}
		if a.target.maybe && !slices.Contains(clusters, cluster) {
			continue
		}
		if len(a.obs.Processes) == 0 {
			fail(gateLine{Agent: name, Why: "the agent supervises no process"})
			continue
		}
		for _, p := range a.obs.Processes {
			if !wanted(p.Name) {
				continue
			}
			seen[p.Name] = true
			n := node{}
			n.line, n.running = judgeProcess(name, p, a.target.rpo)
			if p.Verdict == response.Down {
				n.restart = &gateRestart{target: a.target, process: p.Name, generation: p.Generation}
			}
			if cluster == "" {
				v.Checked++
				v.Lines = append(v.Lines, n.line)
				if !n.line.OK {
					v.Failing++
				}
				if n.restart != nil {
					v.Restartable = append(v.Restartable, *n.restart)
				}
				continue
			}
			if byCluster[cluster] == nil {
				byCluster[cluster] = map[string][]node{}
			}
			byCluster[cluster][p.Name] = append(byCluster[cluster][p.Name], n)
		}
	}
	clusterNames := slices.Sorted(maps.Keys(byCluster))
	for c := range silent {
		if byCluster[c] == nil {
			clusterNames = append(clusterNames, c)
		}
	}
	sort.Strings(clusterNames)
	allProtected := true
	for _, c := range clusterNames {
		protected := len(byCluster[c]) > 0
		for _, proc := range slices.Sorted(maps.Keys(byCluster[c])) {
			nodes := byCluster[c][proc]
			v.Checked++
			runs := slices.ContainsFunc(nodes, func(n node) bool { return n.running && n.line.OK })
			for _, n := range nodes {
				l := n.line
				if runs && !l.OK {
					l.Note = true
				}
				if !runs && n.restart != nil {
					v.Restartable = append(v.Restartable, *n.restart)
				}
				v.Lines = append(v.Lines, l)
			}
			if !runs {
				protected = false
				fail(gateLine{Agent: "cluster " + c, Process: proc, Why: "no node that answered runs it within the RPO"})
			}
		}
		for _, l := range silent[c] {
			l.Why += " (a node of cluster " + c + ")"
			if protected {
				l.Note = true
				v.Lines = append(v.Lines, l)
			} else {
				fail(l)
			}
		}
		allProtected = allProtected && protected
	}
	for _, l := range maybeSilent {
		l.Why += " (its cluster is not configured: it may be a node of " + strings.Join(clusters, ", ") + ")"
		if allProtected && len(clusterNames) > 0 {
			l.Note = true
			v.Lines = append(v.Lines, l)
		} else {
			fail(l)
		}
	}
	for _, name := range only {
		if !seen[name] {
			fail(gateLine{Agent: "every agent that answered", Process: name, Why: "no such process"})
		}
	}
	if v.Checked == 0 && v.Failing == 0 {
		fail(gateLine{Agent: "every agent asked", Why: "nothing to check"})
	}
	v.Protected = v.Failing == 0
	return v
}

// judgeProcess judges one process of one agent: its line, and whether it
// runs where expected.
func judgeProcess(agent string, p response.ProcessVerdict, rpo time.Duration) (line gateLine, running bool) {
	line = gateLine{Agent: agent, Process: p.Name, Why: p.Reason}
	switch p.Verdict {
	case response.Running:
		lag, ok := p.LagSeconds()
		switch {
		case ok && fleet.LagBeyondRPO(lag, rpo):
			line.Why = fmt.Sprintf("%s, protection lag %s exceeds RPO %s", p.Reason, outage.Seconds(response.Duration(lag)), outage.Seconds(rpo))
		case ok && rpo > 0:
			line.OK = true
			line.Why = fmt.Sprintf("%s, protection lag %s within RPO %s", p.Reason, outage.Seconds(response.Duration(lag)), outage.Seconds(rpo))
		default:
			line.OK = true
		}
		return line, true
	case response.NotExpected:
		line.OK = true
		line.Why = "standby: " + p.Reason
	case response.RunningNotExpected:
		line.OK = true
	case response.Down:
		line.Why = "not running: " + p.Reason
	}
	return line, false
}

// unreachable says why an agent gave no usable answer.
func unreachable(err error) string {
	var ae *agentclient.Error
	if errors.As(err, &ae) && ae.Fault == agentclient.FaultAgent && (ae.StatusCode == 401 || ae.StatusCode == 403) {
		return fmt.Sprintf("the agent refused the read token (HTTP %d)", ae.StatusCode)
	}
	if errors.As(err, &ae) && ae.IsTimeout() {
		return "agent unreachable: no answer in time (" + ae.URL + ")"
	}
	return "agent unreachable: " + err.Error()
}
