package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/cluster"
	"github.com/vigil-cdp/vigil/pkg/engine"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/history"
	"github.com/vigil-cdp/vigil/pkg/outage"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// recentEvents is how many events the table view shows under the table.
const recentEvents = 8

type watchOptions struct {
	config     string
	historyDir string
	retention  time.Duration
	once       bool
	json       bool
	interval   time.Duration
	// listen, tlsCert and tlsKey: where push agents send their reports.
	listen, tlsCert, tlsKey string
	// historyPostgres and historyScope: a history shared in PostgreSQL.
	historyPostgres, historyScope string
	// clusterJoin, clusterBind, clusterAdvertise, clusterName: this
	// member's part in a fleet divided among monitors.
	clusterJoin, clusterBind, clusterAdvertise, clusterName string
	// redraw clears the terminal before each table (a terminal, not a pipe).
	redraw bool
	// engine options the tests set (fake clock, fast polls).
	engineOptions engine.Options
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o watchOptions
	fs.StringVar(&o.config, "config", "fleet.yaml", "the fleet file")
	fs.StringVar(&o.historyDir, "history", "", "folder of the history store (default: the fleet file's path with .history appended)")
	fs.DurationVar(&o.retention, "retention", history.DefaultRetention, "how long observations and events are kept in the history (negative: forever)")
	fs.BoolVar(&o.once, "once", false, "poll every agent once, act, print and exit: 0 when every agent is OK or STANDBY, 1 otherwise")
	fs.BoolVar(&o.json, "json", false, "print each state change and action as one JSON object per line instead of the table")
	fs.DurationVar(&o.interval, "interval", 0, "time between polls (default: pollInterval from the fleet file)")
	fs.StringVar(&o.listen, "listen", "", "receive the reports of agents with transport push on this address (POST /v1/reports), e.g. :7443")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "with --listen: serve HTTPS with this certificate (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "with --listen: the certificate's private key (PEM)")
	fs.StringVar(&o.historyPostgres, "history-postgres", "", "keep the history in PostgreSQL, shared with other monitors (a connection string; the password from the fleet's history.password or PGPASSWORD); --history then holds the local buffer")
	fs.StringVar(&o.historyScope, "history-scope", "", "with a shared history: the name this fleet's rows are kept under (default: the fleet's history.scope, else vigil-watch)")
	fs.StringVar(&o.clusterJoin, "cluster-join", "", "divide the agents with other vigil watch members: comma-separated host:port of members to join through (needs a shared history)")
	fs.StringVar(&o.clusterBind, "cluster-bind", "", "this member's gossip address, host:port (default: the fleet's cluster.bind, else 0.0.0.0:7946)")
	fs.StringVar(&o.clusterAdvertise, "cluster-advertise", "", "the address other members reach this one at, host[:port]")
	fs.StringVar(&o.clusterName, "cluster-name", "", "this member's name (default: host name and port)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil watch: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	o.redraw = isTerminal(stdout)
	return watch(ctx, o, stdout, stderr)
}

func watch(ctx context.Context, o watchOptions, stdout, stderr io.Writer) int {
	cfg, err := fleet.Load(o.config)
	if err != nil {
		// One problem a line: the fleet loader reports them all at once.
		problems := strings.Split(err.Error(), "\n")
		fmt.Fprintf(stderr, "vigil watch: %s\n", printable(problems[0]))
		for _, p := range problems[1:] {
			fmt.Fprintf(stderr, "  %s\n", printable(p))
		}
		return ExitUsage
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "vigil watch: warning: %s: %s\n", o.config, printable(w))
	}
	if o.interval != 0 {
		if o.interval < fleet.MinPollInterval {
			fmt.Fprintf(stderr, "vigil watch: --interval: %s is below the minimum of %s\n", o.interval, fleet.MinPollInterval)
			return ExitUsage
		}
		cfg.PollInterval = o.interval
	}
	switch {
	case o.listen != "" && o.once:
		fmt.Fprintln(stderr, "vigil watch: --listen receives reports over time; it does not go with --once")
		return ExitUsage
	case (o.tlsCert == "") != (o.tlsKey == ""):
		fmt.Fprintln(stderr, "vigil watch: give both --tls-cert and --tls-key, or neither")
		return ExitUsage
	case o.tlsCert != "" && o.listen == "":
		fmt.Fprintln(stderr, "vigil watch: --tls-cert and --tls-key go with --listen")
		return ExitUsage
	}
	if o.listen == "" {
		for _, a := range cfg.Agents {
			if a.Pushes() {
				fmt.Fprintf(stderr, "vigil watch: warning: agent %q has transport push, and without --listen its reports cannot arrive: it will turn FAILED\n", a.Name)
			}
		}
	}
	if o.historyDir == "" {
		// One store per fleet file: two fleets never share a history.
		o.historyDir = o.config + ".history"
	}
	if err := o.applyShared(&cfg); err != nil {
		fmt.Fprintf(stderr, "vigil watch: %s\n", printable(err.Error()))
		return ExitUsage
	}
	store, err := openWatchHistory(ctx, o, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "vigil watch: %s\n", printable(err.Error()))
		return ExitUsage
	}
	defer store.Close()
	members, err := joinWatchCluster(o, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "vigil watch: %s\n", printable(err.Error()))
		return ExitUsage
	}
	if members != nil {
		// Leaving at once lets the others take this member's agents over
		// without waiting for its failure to be detected.
		defer func() { _ = members.Leave(2 * time.Second) }()
	}

	out := &watchOutput{w: stdout, json: o.json, appendMode: !o.json && !o.redraw}
	opts := o.engineOptions
	opts.History = store
	if members != nil {
		opts.Membership = members
		out.members = members
		if opts.Client == nil {
			opts.Client = agentclient.New(nil).WithUserAgent(fmt.Sprintf("vigil-monitor (member %s)", members.Self()))
		}
	}
	opts.Sink = engine.SinkFunc(out.event)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: utcLogTime}))
	}
	e, err := engine.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "vigil watch: %s\n", printable(err.Error()))
		return ExitUsage
	}
	out.shared = e.Shared

	if o.once {
		if err := e.PollNow(ctx, ""); err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "vigil watch: %s\n", printable(err.Error()))
		}
		// Handlers the poll started end (at their timeout at the latest) before the history closes.
		e.WaitHandlers()
		snap := e.Snapshot()
		if !o.json {
			out.table(snap, time.Now(), false)
		}
		return onceExitCode(snap)
	}

	if o.listen != "" {
		addr, served, err := listenForReports(ctx, e, o.listen, o.tlsCert, o.tlsKey, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "vigil watch: --listen %s: %s\n", o.listen, printable(err.Error()))
			return ExitUsage
		}
		scheme := "http"
		if o.tlsCert != "" {
			scheme = "https"
		}
		fmt.Fprintf(stderr, "vigil watch: receiving reports at %s://%s%s\n", scheme, addr, ReportsPath)
		defer func() { <-served }()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.Run(ctx)
	}()
	if !o.json {
		// The engine polls on its own schedule; the view follows it, a little
		// after each cycle is due, so that the table shows that cycle's answers.
		ticker := time.NewTicker(cfg.PollInterval)
		defer ticker.Stop()
		first := time.NewTimer(min(cfg.PollInterval/2, time.Second))
		defer first.Stop()
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-first.C:
			case <-ticker.C:
			}
			out.table(e.Snapshot(), time.Now(), o.redraw)
		}
	}
	<-done
	return ExitOK
}

// onceExitCode: 0 when every agent is OK or STANDBY, 1 otherwise.
func onceExitCode(snap engine.Snapshot) int {
	for _, a := range snap.Agents {
		if a.State != state.OK && a.State != state.Standby {
			return ExitNotAll
		}
	}
	return ExitOK
}

// watchOutput prints the engine's events and the table. On a terminal the
// table is redrawn in place each cycle with the recent events under it; into a
// pipe or file (appendMode) each event is a line as it happens and the table
// is printed again only when a state or reason changed, so the output reads
// as a log.
type watchOutput struct {
	mu         sync.Mutex
	w          io.Writer
	json       bool
	appendMode bool
	recent     []engine.Event
	// lastTable is what the table last printed showed (appendMode).
	lastTable string
	// members and shared: this member's part in a divided fleet.
	members *cluster.Cluster
	shared  func() engine.SharedView
}

func (o *watchOutput) event(ev engine.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		// One object per line, written at once: a reader sees each change as it happens.
		_, _ = o.w.Write(append(b, '\n'))
		return
	}
	if ev.Type != history.TypeState && ev.Type != history.TypeAction && ev.Type != history.TypeHandler {
		return
	}
	if o.appendMode {
		_, _ = io.WriteString(o.w, describeEvent(ev)+"\n")
		return
	}
	o.recent = append(o.recent, ev)
	if len(o.recent) > recentEvents {
		o.recent = o.recent[len(o.recent)-recentEvents:]
	}
}

func (o *watchOutput) table(snap engine.Snapshot, now time.Time, redraw bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cluster := ""
	if o.members != nil && o.shared != nil {
		cluster = clusterLine(o.members, o.shared(), len(snap.Agents))
	}
	if o.appendMode {
		shown := tableContent(snap) + cluster
		if shown == o.lastTable {
			return
		}
		o.lastTable = shown
	}
	var b strings.Builder
	if redraw {
		b.WriteString("\x1b[H\x1b[2J")
	}
	counts := map[state.State]int{}
	for _, a := range snap.Agents {
		counts[a.State]++
	}
	var summary []string
	for _, s := range state.All() {
		if counts[s] > 0 {
			summary = append(summary, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(&b, "%s  %d agents: %s\n", utc(now), len(snap.Agents), strings.Join(summary, ", "))
	if cluster != "" {
		fmt.Fprintln(&b, cluster)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tCLUSTER/ROLE\tSTATE\tRTT\tBUDGET\tLAG\tLAST RESTART\tREASON")
	for _, a := range snap.Agents {
		// Lag matters where CDP should run: a standby node's stopped process reports a lag that
		// only grows, and would read as an alarm. What an earlier answer said is not shown as
		// now: without a status in the latest poll, RTT and lag are unknown.
		fresh := answeredLatest(a)
		agentRTT, agentLag, worst := unknown, unknown, -1.0
		if fresh {
			agentRTT, agentLag = rtt(a), "-"
		}
		for _, p := range a.Processes {
			if fresh && p.LagSeconds != nil && p.State != state.Standby && *p.LagSeconds > worst {
				worst = *p.LagSeconds
				agentLag = lagText(worst)
			}
		}
		row(tw, a.Name, clusterRole(a), a.State.String(), agentRTT, budget(a.Budget), agentLag, lastRestart(a, now), a.Reason)
		for _, p := range a.Processes {
			processLag := ""
			switch {
			case p.State == state.Standby:
			case !fresh:
				processLag = unknown
			case p.LagSeconds != nil:
				processLag = lagText(*p.LagSeconds)
			}
			row(tw, "  "+p.Name, "", p.State.String(), "", "", processLag, "", p.Reason)
		}
	}
	_ = tw.Flush()
	if len(o.recent) > 0 {
		b.WriteString("\nRecent events:\n")
		for _, ev := range o.recent {
			b.WriteString("  " + describeEvent(ev) + "\n")
		}
	}
	b.WriteString("\n")
	_, _ = io.WriteString(o.w, b.String())
}

// row writes one table row; each cell is printable (agent-supplied text
// holds no tab, newline or escape sequence once written).
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = printable(c)
	}
	_, _ = io.WriteString(w, strings.Join(cells, "\t")+"\n")
}

// tableContent is what the table says that matters to a reader: states and
// reasons, not RTTs or ages.
func tableContent(snap engine.Snapshot) string {
	var b strings.Builder
	for _, a := range snap.Agents {
		fmt.Fprintf(&b, "%s %s %s %s\n", a.Name, clusterRole(a), a.State, a.Reason)
		for _, p := range a.Processes {
			fmt.Fprintf(&b, " %s %s %s\n", p.Name, p.State, p.Reason)
		}
	}
	return b.String()
}

func clusterRole(a engine.AgentSnapshot) string {
	switch {
	case a.Cluster != "" && a.Role != "":
		return a.Cluster + "/" + a.Role
	case a.Cluster != "":
		return a.Cluster
	case a.Role != "":
		return a.Role
	}
	return "-"
}

// unknown is shown for a value the latest poll did not tell: the RTT and
// protection lag of an agent that did not answer it with a status.
const unknown = "?"

// answeredLatest reports whether the agent answered this engine's latest
// poll with a status (not an error), so that its RTT and lags are current.
// A state restored from the history, a silent agent (GRACE, FAILED) and one
// that answered with an error (UNKNOWN) did not.
func answeredLatest(a engine.AgentSnapshot) bool {
	return a.Judged && !a.LastAnswerAt.IsZero() && !a.LastAnswerAt.Before(a.LastPollAt) && a.LastError == ""
}

func rtt(a engine.AgentSnapshot) string {
	if a.LastAnswerAt.IsZero() || a.RTT == 0 {
		return "-"
	}
	if a.RTT < time.Millisecond {
		return a.RTT.Round(time.Microsecond).String()
	}
	return a.RTT.Round(time.Millisecond).String()
}

// lagText is a protection lag for the table: how far protection is behind.
func lagText(seconds float64) string {
	d := response.Duration(seconds)
	if d < time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func budget(b outage.Budget) string {
	if b.Total == 0 {
		return "-"
	}
	return b.Total.Round(time.Second).String()
}

func lastRestart(a engine.AgentSnapshot, now time.Time) string {
	r := a.LastRestart()
	if r == nil {
		return "-"
	}
	result := "ok"
	if !r.OK {
		result = "failed"
	}
	return fmt.Sprintf("%s ago by %s (%s)", now.Sub(r.At).Round(time.Second), r.By, result)
}

// describeEvent is one line for an event, printable.
func describeEvent(ev engine.Event) string {
	return printable(eventText(ev))
}

func eventText(ev engine.Event) string {
	at := utc(ev.Time)
	who := ev.Agent
	if ev.Process != "" {
		who += "/" + ev.Process
	}
	if ev.Type == history.TypeHandler {
		text := fmt.Sprintf("%s %s handler %s on %s -> %s: %s", at, who, ev.Handler, ev.From, ev.To, ev.Result)
		if ev.ExitCode != nil {
			text += fmt.Sprintf(" (exit %d)", *ev.ExitCode)
		}
		if ev.Error != "" {
			text += ": " + ev.Error
		}
		return text
	}
	if ev.Type == history.TypeAction {
		text := fmt.Sprintf("%s %s %s by %s: %s, generation %d", at, who, ev.Action, ev.By, ev.Result, ev.Generation)
		if ev.Error != "" {
			text += ": " + ev.Error
		}
		return text
	}
	text := fmt.Sprintf("%s %s %s -> %s: %s", at, who, ev.From, ev.To, ev.Reason)
	if ev.Diagnosis != "" {
		text += " (" + ev.Diagnosis + ")"
	}
	return text
}

// utc is how watch's human output writes a time: UTC, to the second, with
// its zone ("2026-11-26T05:43:32Z"), in the header and on every event line.
func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// utcLogTime writes the engine's log lines' time in UTC too.
func utcLogTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}

// isTerminal reports whether w is a character device (a terminal), where the
// table is redrawn in place instead of appended.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
