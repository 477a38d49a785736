package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigil-cdp/vigil/pkg/history"
)

// runHistory is "vigil history": the state changes and actions a monitor
// recorded (vigil watch's history store, or the datasource's folder), read
// without polling anything.
func runHistory(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("history", "", "the history folder (vigil watch's --history, e.g. fleet.yaml.history)")
	agent := fs.String("agent", "", "only this agent")
	since := fs.Duration("since", 0, "only the last D (e.g. 24h; default: everything kept)")
	asJSON := fs.Bool("json", false, "one JSON object per line (the keys of vigil watch --json), agents' own events included")
	pg := fs.String("history-postgres", "", "read a history shared in PostgreSQL instead (a connection string; the password from PGPASSWORD)")
	scope := fs.String("history-scope", defaultScope, "with --history-postgres: the fleet's name (vigil watch --history-scope), or org/id/uid for a Grafana datasource's rows (e.g. 1/3/vigil-cdp)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 || (*dir == "") == (*pg == "") {
		fmt.Fprintln(stderr, "vigil history: --history DIR is required, or --history-postgres DSN (and nothing else)")
		return ExitUsage
	}
	var store history.Backend
	var err error
	if *pg != "" {
		sc, serr := parseScope(*scope)
		if serr != nil {
			fmt.Fprintf(stderr, "vigil history: --history-scope: %v\n", serr)
			return ExitUsage
		}
		store, err = history.OpenPostgres(context.Background(), *pg, history.PGOptions{Scope: sc, ReadOnly: true})
	} else {
		store, err = history.OpenReadOnly(*dir)
	}
	if err != nil {
		if errors.Is(err, history.ErrInUse) {
			fmt.Fprintf(stderr, "vigil history: %v: a running vigil watch holds it; stop it, or read a copy of the folder\n", err)
		} else {
			fmt.Fprintf(stderr, "vigil history: %v\n", err)
		}
		return ExitUsage
	}
	defer store.Close()
	q := history.Query{Agent: *agent}
	if *since > 0 {
		q.From = time.Now().Add(-*since)
	}
	events, err := store.Events(q)
	if err != nil {
		fmt.Fprintf(stderr, "vigil history: %v\n", err)
		return ExitUsage
	}
	shown := 0
	for _, ev := range events {
		if *asJSON {
			b, err := json.Marshal(ev)
			if err == nil {
				_, _ = stdout.Write(append(b, '\n'))
				shown++
			}
			continue
		}
		if ev.Type != history.TypeState && ev.Type != history.TypeAction {
			continue
		}
		// The full time in UTC, then the line vigil watch prints (after its time of day).
		text := eventText(ev)
		if i := strings.IndexByte(text, ' '); i >= 0 {
			text = text[i+1:]
		}
		fmt.Fprintln(stdout, printable(ev.Time.UTC().Format(time.RFC3339)+" "+text))
		shown++
	}
	if !*asJSON && shown == 0 {
		fmt.Fprintln(stderr, "vigil history: no state change or action recorded"+map[bool]string{true: " for " + *agent, false: ""}[*agent != ""])
	}
	return ExitOK
}

// parseScope reads a fleet's name, or org/id/uid of a datasource.
func parseScope(s string) (history.Scope, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		if s == "" {
			return history.Scope{}, errors.New("empty")
		}
		return history.Scope{UID: s}, nil
	}
	var sc history.Scope
	if _, err := fmt.Sscanf(parts[0]+" "+parts[1], "%d %d", &sc.Org, &sc.ID); err != nil {
		return history.Scope{}, fmt.Errorf("%q: org/id/uid needs numbers for the org and the datasource ID", s)
	}
	sc.UID = parts[2]
	return sc, nil
}
