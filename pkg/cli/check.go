package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/textlimit"
)

// Nagios/Icinga plugin states, by the monitoring-plugins guidelines.
const (
	NagiosOK       = 0
	NagiosWarning  = 1
	NagiosCritical = 2
	NagiosUnknown  = 3
)

var nagiosNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// checkOptions are the flags of "vigil check".
type checkOptions struct {
	agentURL string
	token    string
	// tokenSource says where token came from, for messages: "--token",
	// "--token-file F", "$VIGIL_READ_TOKEN", or "" when no token was given.
	tokenSource string
	timeout     time.Duration
	lagWarn     time.Duration
	lagCrit     time.Duration
	agentName   string
	// verbose: when the agent gives no answer, say where the path to it
	// breaks (DNS, TCP, HTTP, ICMP echo, path trace) in the long output.
	verbose bool
}

// checkResult is the verdict of one check: a plugin state, the sentence behind
// it and the performance data. It is returned whole so that tests (and a
// future caller such as a backup job's pre-check) see why, not just a code.
type checkResult struct {
	State    int
	Summary  string
	Details  []string
	PerfData []string
}

// Line is the one status line a monitoring system shows, with performance
// data after "|". The summary holds agent-supplied text: it is made one line
// without "|" (nagiosText); the performance data are built safe (perfLabel).
func (r checkResult) Line() string {
	line := fmt.Sprintf("CDP %s - %s", nagiosNames[r.State], nagiosText(r.Summary))
	if len(r.PerfData) > 0 {
		line += " | " + strings.Join(r.PerfData, " ")
	}
	return line
}

// write prints the status line, then the long output (one line a process),
// each line made safe by nagiosText.
func (r checkResult) write(w io.Writer) {
	fmt.Fprintln(w, r.Line())
	for _, d := range r.Details {
		fmt.Fprintln(w, nagiosText(d))
	}
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil check", flag.ContinueOnError)
	// The flag package's own messages are not written: a command-line error
	// is a status line first (a monitoring system shows the first line of
	// stdout), and the flags follow on stderr.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var o checkOptions
	var tokenFile string
	fs.StringVar(&o.agentURL, "agent", "", "the agent's base URL, e.g. http://10.0.0.5:7070 (required)")
	fs.StringVar(&o.token, "token", "", "the agent's read token (visible to other users in the process list: prefer --token-file or VIGIL_READ_TOKEN)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the agent's read token")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long to wait for the agent's answer")
	fs.DurationVar(&o.lagWarn, "lag-warn", 60*time.Second, "protection lag at or above which the check warns")
	fs.DurationVar(&o.lagCrit, "lag-crit", 300*time.Second, "protection lag at or above which the check is critical")
	fs.BoolVar(&o.verbose, "v", false, "when the agent does not answer, diagnose where the path to it breaks: DNS, TCP, HTTP, ICMP echo and a path trace (long output, up to --timeout more)")
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: vigil check --agent URL [flags]\n\nFlags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	// Usage errors are UNKNOWN, not CRITICAL: the plugin, not CDP, is at fault.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return NagiosOK
		}
		fmt.Fprintf(stdout, "CDP UNKNOWN - vigil check: %s (the flags follow; see vigil check -h)\n", nagiosText(err.Error()))
		printUsage(stderr)
		return NagiosUnknown
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stdout, "CDP UNKNOWN - vigil check: %s\n", nagiosText(fmt.Sprintf(format, a...)))
		return NagiosUnknown
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if o.agentURL == "" {
		return usageErr("--agent URL is required")
	}
	// The agent URL rule of fleet.yaml and the datasource; a URL that may
	// hold a secret is not repeated.
	if problem, secretsPlace := fleet.AgentURLProblem(o.agentURL); secretsPlace {
		return usageErr("--agent: %s; give the read token with --token-file or VIGIL_READ_TOKEN", problem)
	} else if problem != "" {
		return usageErr("--agent: %q is not an absolute http or https URL", o.agentURL)
	}
	if o.timeout <= 0 {
		return usageErr("--timeout must be positive")
	}
	if o.lagWarn < 0 || o.lagCrit < 0 || (o.lagCrit > 0 && o.lagWarn > o.lagCrit) {
		return usageErr("--lag-warn (%s) must not be above --lag-crit (%s)", o.lagWarn, o.lagCrit)
	}
	if o.token != "" && tokenFile != "" {
		return usageErr("give --token or --token-file, not both")
	}
	if o.token != "" {
		o.tokenSource = "--token"
	}
	if tokenFile != "" {
		o.tokenSource = "--token-file " + tokenFile
		tok, err := readTokenFile(tokenFile)
		if err != nil {
			return usageErr("--token-file: %v", err)
		}
		o.token = tok
	}
	if o.token == "" {
		o.token = os.Getenv("VIGIL_READ_TOKEN")
		if o.token != "" {
			o.tokenSource = "$VIGIL_READ_TOKEN"
		}
	}

	client := agentclient.New(nil)
	defer client.Close()
	result := check(ctx, client, o)
	result.write(stdout)
	return result.State
}

// check polls one agent once and turns what it says into a plugin state.
func check(ctx context.Context, client agentclient.API, o checkOptions) checkResult {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	agent := agentclient.Agent{Name: o.agentName, URL: o.agentURL, ReadToken: o.token}
	answer, err := client.Status(ctx, agent)
	if err != nil {
		r := unansweredResult(err, o)
		if o.verbose && r.State == NagiosCritical {
			// A diagnosis of its own, with a full timeout: the poll spent its.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
			defer cancel()
			d := client.Diagnose(dctx, agent)
			r.Details = append(r.Details, diagnosisLines(d)...)
		}
		return r
	}
	perf := []string{perf("rtt", answer.RTT.Seconds(), "s", "", "", "0")}
	status, err := response.Parse(answer.Body)
	if err != nil {
		return checkResult{State: NagiosUnknown, Summary: "the agent's answer cannot be understood: " + err.Error(), PerfData: perf}
	}
	return nagiosResult(response.Classify(status), o, perf)
}

func unansweredResult(err error, o checkOptions) checkResult {
	var ae *agentclient.Error
	if !errors.As(err, &ae) {
		return checkResult{State: NagiosUnknown, Summary: err.Error()}
	}
	switch {
	case ae.IsTimeout():
		return checkResult{State: NagiosCritical, Summary: fmt.Sprintf("agent unreachable: no answer within %s (%s)", o.timeout, ae.URL)}
	case ae.Fault == agentclient.FaultNetwork:
		return checkResult{State: NagiosCritical, Summary: "agent unreachable: " + ae.Error()}
	case ae.Fault == agentclient.FaultAgent && ae.StatusCode >= 500:
		return checkResult{State: NagiosCritical, Summary: "the agent answered with an error: " + ae.Error()}
	case ae.Fault == agentclient.FaultAgent && (ae.StatusCode == 401 || ae.StatusCode == 403):
		answered := fmt.Sprintf("GET %s answered HTTP %d", ae.URL, ae.StatusCode)
		if o.tokenSource == "" {
			return checkResult{State: NagiosUnknown, Summary: "no read token was given, and the agent requires one: " + noTokenHint + " (" + answered + ")"}
		}
		return checkResult{State: NagiosUnknown, Summary: "the agent refused the read token from " + o.tokenSource +
			": it must be one of the agent's read tokens (auth.readToken in its configuration) (" + answered + ")"}
	default:
		return checkResult{State: NagiosUnknown, Summary: ae.Error()}
	}
}

// diagnosisLines are a diagnosis's steps, one line each, for the long output.
func diagnosisLines(d agentclient.Diagnosis) []string {
	var out []string
	for _, s := range []struct {
		name string
		step agentclient.Step
	}{{"dns", d.DNS}, {"tcp", d.TCP}, {"http", d.HTTP}, {"ping", d.Ping}, {"path", d.Path}} {
		switch {
		case s.step.OK:
			out = append(out, "diagnosis: "+s.name+" ok: "+s.step.Detail)
		case s.step.Done:
			out = append(out, "diagnosis: "+s.name+" failed: "+s.step.Detail)
		case s.step.Detail != "":
			out = append(out, "diagnosis: "+s.name+" "+s.step.Detail)
		default:
			out = append(out, "diagnosis: "+s.name+" not tried")
		}
	}
	return out
}

// noTokenHint names the three ways to give check a read token, the safest first.
const noTokenHint = "give it with --token-file F, the environment variable VIGIL_READ_TOKEN, or --token T"

// nagiosResult turns an observation into a plugin state: the worst over processes.
func nagiosResult(obs response.Observation, o checkOptions, perfData []string) checkResult {
	r := checkResult{State: NagiosOK, PerfData: perfData}
	// Processes are only ever OK, WARNING or CRITICAL, so the worst is the highest.
	raise := func(state int) {
		if state > r.State {
			r.State = state
		}
	}
	where := obs.Status.Agent.Hostname
	if obs.Cluster != "" {
		where = fmt.Sprintf("%s (%s node %s of cluster %s)", where, obs.Role, obs.Node, obs.Cluster)
	}
	if len(obs.Processes) == 0 {
		return checkResult{State: NagiosUnknown, Summary: where + ": the agent supervises no process", PerfData: perfData}
	}

	procs := append([]response.ProcessVerdict(nil), obs.Processes...)
	sort.SliceStable(procs, func(i, j int) bool { return procs[i].Name < procs[j].Name })
	var parts []string
	for _, p := range procs {
		state, text := processState(p, o)
		raise(state)
		parts = append(parts, fmt.Sprintf("%s %s", p.Name, text))
		r.Details = append(r.Details, fmt.Sprintf("%s: %s: %s", nagiosNames[state], p.Name, text))
		up := 0.0
		if p.State == "running" {
			up = 1
		}
		label := perfLabel(p.Name)
		r.PerfData = append(r.PerfData,
			perf(label+"_up", up, "", "", "", "0;1"),
			perf(label+"_restarts", float64(p.Restarts), "c", "", "", "0"),
			perf(label+"_generation", float64(p.Generation), "", "", "", "0"),
		)
		if lag, ok := p.LagSeconds(); ok {
			r.PerfData = append(r.PerfData, perf(label+"_lag", lag, "s", seconds(o.lagWarn), seconds(o.lagCrit), "0"))
		}
	}
	r.Summary = where + ": " + strings.Join(parts, "; ")
	if len(procs) == 1 {
		// A single process needs no separate detail line: it is the summary.
		r.Details = nil
	}
	// What the agent asks its operator to fix (a token file others can read): said, not judged.
	if n := len(obs.Status.Warnings); n > 0 {
		r.Summary += fmt.Sprintf(" (%d agent warning%s below)", n, map[bool]string{true: "s", false: ""}[n > 1])
		for i, w := range obs.Status.Warnings {
			if i == maxAgentWarnings {
				r.Details = append(r.Details, fmt.Sprintf("agent warning: %d more", n-i))
				break
			}
			r.Details = append(r.Details, "agent warning: "+textlimit.Clip(w, 300))
		}
	}
	return r
}

// maxAgentWarnings is how many of an agent's warnings check prints.
const maxAgentWarnings = 5

func processState(p response.ProcessVerdict, o checkOptions) (int, string) {
	switch p.Verdict {
	case response.Down:
		return NagiosCritical, "not running: " + p.Reason
	case response.Starting, response.RoleUnknown, response.RunningNotExpected:
		return NagiosWarning, p.Reason
	case response.NotExpected:
		return NagiosOK, "standby: " + p.Reason
	}
	if p.AutoRestartSuspended != nil && *p.AutoRestartSuspended {
		return NagiosWarning, p.Reason + "; the agent suspended its auto-restart after repeated crashes"
	}
	if lag, ok := p.LagSeconds(); ok {
		lagText := fmt.Sprintf("%s, protection lag %s", p.Reason, response.Duration(lag).Round(time.Second))
		switch {
		case o.lagCrit > 0 && lag >= o.lagCrit.Seconds():
			return NagiosCritical, lagText + fmt.Sprintf(" (critical at %s)", o.lagCrit)
		case o.lagWarn > 0 && lag >= o.lagWarn.Seconds():
			return NagiosWarning, lagText + fmt.Sprintf(" (warning at %s)", o.lagWarn)
		}
		return NagiosOK, lagText
	}
	return NagiosOK, p.Reason
}

// perf formats one performance datum: 'label'=value[UOM];warn;crit;min;max.
// minMax is "min" or "min;max".
func perf(label string, value float64, uom, warn, crit, minMax string) string {
	return fmt.Sprintf("%s=%s%s;%s;%s;%s", label, trimFloat(value), uom, warn, crit, minMax)
}

func seconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return trimFloat(d.Seconds())
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.6f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-0" {
		return "0"
	}
	return s
}

// perfLabel keeps a process name usable as a performance data label: only
// letters, digits, "_", "-" and "." (the agent's own rule for process names,
// which it keeps unchanged), so a label never needs quoting and never holds a
// space, quote, "=", "|" or control character of the plugin output format.
func perfLabel(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, name)
}
