// Package cli is the vigil command line: "vigil watch" shows a live view of a
// fleet of agents in a terminal. It uses the same settings rules and agent
// client as the Grafana datasource.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vigil-cdp/vigil/pkg/agentclient"
	"github.com/vigil-cdp/vigil/pkg/models"
)

// Version is set at build time with -ldflags "-X github.com/vigil-cdp/vigil/pkg/cli.Version=...".
var Version = "dev"

// Exit codes.
const (
	ExitOK     = 0
	ExitNotAll = 1 // some agent did not answer
	ExitUsage  = 2 // bad flags or a bad fleet file
)

const usage = `Usage: vigil <command> [flags]

Commands:
  version   print the version
  watch     poll every agent of a fleet and print a table each interval
  check     a Nagios/Icinga plugin: poll one agent once (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)

Run "vigil watch -h" or "vigil check -h" for their flags.
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "fleet.yaml", "fleet file: pollInterval, agents [{name, url, cluster}], defaults {readToken}")
	once := fs.Bool("once", false, "poll once, print the table and exit: 0 when every agent answered, 1 otherwise")
	interval := fs.Duration("interval", 0, "time between polls (default: pollInterval from the fleet file)")
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

	settings, err := LoadFleet(*config)
	if err != nil {
		fmt.Fprintf(stderr, "vigil watch: %v\n", err)
		return ExitUsage
	}
	every := settings.PollInterval
	if *interval != 0 {
		if *interval < models.MinPollInterval {
			fmt.Fprintf(stderr, "vigil watch: --interval: %s is below the minimum of %s\n", *interval, models.MinPollInterval)
			return ExitUsage
		}
		every = *interval
	}

	client := agentclient.New(nil)
	defer client.Close()
	w := &watcher{agents: settings.Agents, client: client, out: stdout, now: time.Now}
	if *once {
		if w.round(ctx) {
			return ExitOK
		}
		return ExitNotAll
	}
	w.loop(ctx, every)
	return ExitOK
}
