// Package cli is the vigil command line. "vigil watch" runs the monitor engine
// on a fleet (the same engine the Grafana datasource runs) and shows it live in
// a terminal or as JSON lines; "vigil check" is a Nagios/Icinga plugin for one
// agent.
package cli

import (
	"context"
	"fmt"
	"io"
)

// Version is set at build time with -ldflags "-X github.com/vigil-cdp/vigil/pkg/cli.Version=...".
var Version = "dev"

// Exit codes.
const (
	ExitOK     = 0
	ExitNotAll = 1 // watch --once: some agent is neither OK nor STANDBY
	ExitUsage  = 2 // bad flags or a bad fleet file
)

const usage = `Usage: vigil <command> [flags]

Commands:
  version   print the version
  watch     monitor a fleet: poll, restart CDP where it should run, show every state live
  check     a Nagios/Icinga plugin: poll one agent once (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
  gate      a backup job's pre- and post-job check: exit 0 when CDP protects, 1 when not
  history   print the state changes and actions a monitor recorded (read only, polls nothing)

Run "vigil watch -h", "vigil check -h" or "vigil gate -h" for their flags.
`

// Run executes the command line and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "vigil %s\n", Version)
		return ExitOK
	case "watch":
		return runWatch(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "gate":
		return runGate(ctx, args[1:], stdout, stderr)
	case "history":
		return runHistory(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
}
