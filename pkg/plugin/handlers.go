package plugin

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/vigil-cdp/vigil/pkg/handlers"
	"github.com/vigil-cdp/vigil/pkg/state"
)

// envHandlerURLPrefixes is where the Grafana server's admin allows the
// datasource's HTTP handlers: [plugin.vigil-cdp-datasource]
// handler_url_prefixes in grafana.ini reaches the plugin as this variable
// (Grafana passes a plugin's own settings as GF_PLUGIN_<KEY>). Unset, no
// handler runs: an org admin must not make the Grafana server call any URL
// on the server's network.
const envHandlerURLPrefixes = "GF_PLUGIN_HANDLER_URL_PREFIXES"

// urlPrefix is one allowed prefix: scheme and host exact, path a prefix.
type urlPrefix struct {
	scheme, host, path string
}

// handlerURLPrefixes reads the allowed prefixes; bad ones are reported and
// left out.
func handlerURLPrefixes(getenv func(string) string) (prefixes []urlPrefix, problems []string) {
	for _, raw := range strings.FieldsFunc(getenv(envHandlerURLPrefixes), func(r rune) bool { return r == ',' || r == ' ' }) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			problems = append(problems, fmt.Sprintf("%s: %q is not an http or https URL prefix (scheme, host and an optional path)", envHandlerURLPrefixes, raw))
			continue
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		prefixes = append(prefixes, urlPrefix{scheme: u.Scheme, host: strings.ToLower(u.Host), path: path})
	}
	return prefixes, problems
}

// allowURL says whether a handler may call raw: its scheme and host are one
// prefix's and its path starts with that prefix's path.
func allowURL(prefixes []urlPrefix) func(string) bool {
	return func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil || u.User != nil {
			return false
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		for _, p := range prefixes {
			if u.Scheme == p.scheme && strings.ToLower(u.Host) == p.host && strings.HasPrefix(path, p.path) {
				return true
			}
		}
		return false
	}
}

// handlersSection says, for "Save & test", which of the configured
// handlers would run (CheckHealth asks only when there are some). A
// handler the server does not allow is a warning, not a failure: the agents
// are what the check is about.
func (d *Datasource) handlersSection() (healthSection, bool) {
	hs := d.settings.Fleet.Handlers
	s := healthSection{title: "Handlers:"}
	prefixes, problems := handlerURLPrefixes(d.monitors.getenv)
	for _, p := range problems {
		s.lines = append(s.lines, "warning: "+p)
	}
	allowed := allowURL(prefixes)
	warn := len(problems) > 0
	for _, h := range hs {
		where := "(no request)"
		if h.HTTP != nil {
			where = h.HTTP.Method + " " + handlers.WithoutQuery(h.HTTP.URL)
		}
		line := fmt.Sprintf("%s: on %s: %s", h.Name, statesText(h.On), where)
		switch {
		case len(prefixes) == 0:
			line += ": NOT run: the Grafana server allows no handler URL (set handler_url_prefixes under [plugin.vigil-cdp-datasource] in grafana.ini)"
			warn = true
		case h.HTTP == nil || !allowed(h.HTTP.URL):
			line += fmt.Sprintf(": NOT run: not under the URLs the Grafana server allows (%s)", envHandlerURLPrefixes)
			warn = true
		default:
			line += ": allowed"
		}
		s.lines = append(s.lines, line)
	}
	return s, warn
}

func statesText(states []state.State) string {
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = st.String()
	}
	return strings.Join(names, ", ")
}
