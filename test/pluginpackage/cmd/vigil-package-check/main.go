// Command vigil-package-check checks a packaged Vigil plugin zip against the
// offline rules of Grafana's plugin validator.
//
//	vigil-package-check [-json] [-v] [-source DIR] [-checksum SUM] [-tracking-list FILE] vigil-cdp-app-<version>.zip
//
// It prints one diagnostic per line as "SEVERITY analyzer: message" and exits
// 1 when any error-severity diagnostic exists, 0 otherwise (2 on bad usage).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-cdp/vigil/test/pluginpackage"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil-package-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "print the detail of each diagnostic and the analyzers that ran")
	source := fs.String("source", "", "plugin source directory (enables sourcecode, packagejson, legacybuilder, buildtools, go-manifest, jsMap)")
	checksum := fs.String("checksum", "", "expected MD5 or SHA1 of the zip")
	trackingList := fs.String("tracking-list", "", "file of tracking hosts, one per line (# comments), replacing the built-in list")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vigil-package-check [flags] vigil-cdp-app-<version>.zip")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	opts := pluginpackage.Options{SourceDir: *source, Checksum: *checksum}
	if *trackingList != "" {
		hosts, err := readList(*trackingList)
		if err != nil {
			fmt.Fprintf(stderr, "vigil-package-check: %v\n", err)
			return 2
		}
		opts.TrackingHosts = hosts
	}
	rep := pluginpackage.CheckWithOptions(fs.Arg(0), opts)

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "vigil-package-check: %v\n", err)
			return 2
		}
	} else {
		for _, d := range rep.Diagnostics {
			fmt.Fprintln(stdout, d.String())
			if *verbose && d.Detail != "" {
				fmt.Fprintf(stdout, "    %s\n", d.Detail)
			}
		}
		if *verbose {
			fmt.Fprintf(stdout, "ran: %s\n", strings.Join(rep.Analyzers, " "))
			for _, s := range rep.Skipped {
				fmt.Fprintf(stdout, "skipped %s: %s\n", s.Analyzer, s.Reason)
			}
		}
		fmt.Fprintf(stderr, "%s: %d error(s), %d warning(s), %d analyzer(s) run\n",
			rep.Archive, len(rep.Errors()), len(rep.Warnings()), len(rep.Analyzers))
	}
	if len(rep.Errors()) > 0 {
		return 1
	}
	return 0
}

func readList(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
