package grafanahost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// Options configures a Host.
type Options struct {
	// Backend answers QueryData, CheckHealth and CallResource.
	Backend Backend
	// Datasources are the provisioned datasources; requests pick one by uid.
	Datasources []Datasource
	// DistDir is the built frontend (the app, with datasource/ and panels/restart/).
	DistDir string
	// HarnessDir holds the browser harness page (index.html) and its bundle.
	HarnessDir string
	// Now is the clock for relative time ranges ("now-6h"); time.Now when nil.
	Now func() time.Time
}

// Host serves Grafana's HTTP API for one backend datasource plugin.
type Host struct {
	opts  Options
	byUID map[orgUID]Datasource

	mu     sync.RWMutex
	appURL string
}

// maxBody bounds request bodies, as Grafana does.
const maxBody = 10 << 20

// New checks the options and returns a Host.
func New(opts Options) (*Host, error) {
	if opts.Backend == nil {
		return nil, errors.New("grafanahost: a Backend is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Host{opts: opts, byUID: map[orgUID]Datasource{}, appURL: "http://127.0.0.1/"}
	for _, ds := range opts.Datasources {
		if ds.OrgID == 0 {
			ds.OrgID = 1
		}
		key := orgUID{ds.OrgID, ds.UID}
		if _, dup := h.byUID[key]; dup {
			return nil, fmt.Errorf("grafanahost: datasource uid %q is provisioned twice in org %d", ds.UID, ds.OrgID)
		}
		h.byUID[key] = ds
	}
	return h, nil
}

// SetAppURL sets the root URL passed to the plugin as GF_APP_URL.
func (h *Host) SetAppURL(u string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.appURL = strings.TrimSuffix(u, "/") + "/"
}

// AppURL returns the root URL passed to the plugin as GF_APP_URL.
func (h *Host) AppURL() string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.appURL
}

// Handler returns the HTTP routes.
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/ds/query", h.handleQuery)
	mux.HandleFunc("/api/datasources/uid/{uid}/resources", h.handleResource)
	mux.HandleFunc("/api/datasources/uid/{uid}/resources/{path...}", h.handleResource)
	mux.HandleFunc("GET /api/datasources/uid/{uid}/health", h.handleHealth)
	mux.HandleFunc("GET /api/harness/datasources", h.handleHarnessDatasources)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "Not found: "+r.URL.Path)
	})

	if h.opts.DistDir != "" {
		dist := h.opts.DistDir
		serveDir(mux, "/public/plugins/vigil-cdp-app/", dist)
		serveDir(mux, "/public/plugins/vigil-cdp-datasource/", filepath.Join(dist, "datasource"))
		serveDir(mux, "/public/plugins/vigil-restart-panel/", filepath.Join(dist, "panels", "restart"))
	}
	if h.opts.HarnessDir != "" {
		serveDir(mux, "/harness/", h.opts.HarnessDir)
		// Grafana serves the icons and fonts @grafana/ui fetches at run time from public/; the
		// harness bundle carries copies of them.
		serveDir(mux, "/public/build/img/", filepath.Join(h.opts.HarnessDir, "grafana-public", "img"))
		serveDir(mux, "/public/fonts/", filepath.Join(h.opts.HarnessDir, "grafana-public", "fonts"))
	}
	mux.HandleFunc("GET /{$}", h.handleHarnessPage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/harness-page") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			h.handleHarnessPage(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

func serveDir(mux *http.ServeMux, prefix, dir string) {
	mux.Handle("GET "+prefix, http.StripPrefix(prefix, http.FileServer(http.Dir(dir))))
}

func (h *Host) handleHarnessPage(w http.ResponseWriter, r *http.Request) {
	if h.opts.HarnessDir == "" {
		http.Error(w, "no harness directory: start the host with --harness DIR", http.StatusNotFound)
		return
	}
	page := filepath.Join(h.opts.HarnessDir, "index.html")
	if _, err := os.Stat(page); err != nil {
		http.Error(w, "harness page missing: "+page, http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.ServeFile(w, r, page)
}

// writeMessage answers an error the way Grafana's API does: {"message": ...}.
func writeMessage(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"message": message})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	encoded, err := json.Marshal(body)
	if err != nil {
		http.Error(w, "encode answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(encoded)
}

// datasource is the caller's org's datasource with this UID, as Grafana
// finds it: the org comes from the X-Grafana-Org-Id header (1 by default).
func (h *Host) datasource(w http.ResponseWriter, r *http.Request, uid string) (Datasource, bool) {
	org, err := orgFromRequest(r)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return Datasource{}, false
	}
	ds, ok := h.byUID[orgUID{org, uid}]
	if !ok {
		writeMessage(w, http.StatusNotFound, fmt.Sprintf("Data source not found: no provisioned datasource has uid %q in org %d", uid, org))
	}
	return ds, ok
}

// caller is the datasource a /api/datasources/uid/{uid}/... request names and
// the user making it; on false the answer is written.
func (h *Host) caller(w http.ResponseWriter, r *http.Request) (Datasource, *backend.User, bool) {
	ds, ok := h.datasource(w, r, r.PathValue("uid"))
	if !ok {
		return Datasource{}, nil, false
	}
	user, ok := h.user(w, r)
	return ds, user, ok
}

func (h *Host) user(w http.ResponseWriter, r *http.Request) (*backend.User, bool) {
	user, err := userFromRequest(r)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return user, true
}

// queryBody is the body of POST /api/ds/query.
type queryBody struct {
	Queries []json.RawMessage `json:"queries"`
	From    string            `json:"from"`
	To      string            `json:"to"`
}

type queryHeader struct {
	RefID      string `json:"refId"`
	Datasource *struct {
		UID  string `json:"uid"`
		Type string `json:"type"`
	} `json:"datasource"`
	QueryType     string  `json:"queryType"`
	MaxDataPoints int64   `json:"maxDataPoints"`
	IntervalMS    float64 `json:"intervalMs"`
}

func (h *Host) handleQuery(w http.ResponseWriter, r *http.Request) {
	user, ok := h.user(w, r)
	if !ok {
		return
	}
	var body queryBody
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil {
		writeMessage(w, http.StatusBadRequest, "bad request data: "+err.Error())
		return
	}
	if len(body.Queries) == 0 {
		writeMessage(w, http.StatusBadRequest, "bad request data: queries: at least one query is required")
		return
	}
	now := h.opts.Now()
	from, err := parseGrafanaTime(orDefault(body.From, "now-6h"), now)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "bad request data: from: "+err.Error())
		return
	}
	to, err := parseGrafanaTime(orDefault(body.To, "now"), now)
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "bad request data: to: "+err.Error())
		return
	}

	// Queries are grouped by datasource, one QueryData call each, as Grafana does.
	byUID := map[string][]backend.DataQuery{}
	found := map[string]Datasource{}
	var order []string
	for i, raw := range body.Queries {
		var q queryHeader
		if err := json.Unmarshal(raw, &q); err != nil {
			writeMessage(w, http.StatusBadRequest, fmt.Sprintf("bad request data: queries[%d]: %v", i, err))
			return
		}
		if q.Datasource == nil || q.Datasource.UID == "" {
			writeMessage(w, http.StatusBadRequest, fmt.Sprintf("bad request data: queries[%d].datasource.uid: is required", i))
			return
		}
		if q.RefID == "" {
			q.RefID = "A"
		}
		if q.MaxDataPoints == 0 {
			q.MaxDataPoints = 100
		}
		if q.IntervalMS == 0 {
			q.IntervalMS = 1000
		}
		ds, ok := h.datasource(w, r, q.Datasource.UID)
		if !ok {
			return
		}
		found[ds.UID] = ds
		if _, seen := byUID[q.Datasource.UID]; !seen {
			order = append(order, q.Datasource.UID)
		}
		byUID[q.Datasource.UID] = append(byUID[q.Datasource.UID], backend.DataQuery{
			RefID:         q.RefID,
			QueryType:     q.QueryType,
			MaxDataPoints: q.MaxDataPoints,
			Interval:      time.Duration(q.IntervalMS * float64(time.Millisecond)),
			TimeRange:     backend.TimeRange{From: from, To: to},
			JSON:          raw,
		})
	}

	result := backend.NewQueryDataResponse()
	for _, uid := range order {
		req := &backend.QueryDataRequest{
			PluginContext: h.pluginContext(found[uid], user),
			Headers:       forwardedHeaders(r),
			Queries:       byUID[uid],
		}
		if user == nil {
			req.Headers["FromAlert"] = "true"
		}
		resp, err := h.opts.Backend.QueryData(r.Context(), req)
		if err != nil {
			writeMessage(w, http.StatusInternalServerError, "Query data error: "+err.Error())
			return
		}
		for refID, dr := range resp.Responses {
			if dr.Error == nil && dr.Status == 0 {
				dr.Status = backend.StatusOK
			}
			result.Responses[refID] = dr
		}
	}

	// Grafana answers 400 when any query failed, with every result in the body.
	status := http.StatusOK
	for _, dr := range result.Responses {
		if dr.Error != nil {
			status = http.StatusBadRequest
		}
	}
	encoded, err := json.Marshal(result)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "encode query answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(encoded)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// forwardedHeaders passes request headers on to the plugin without the
// browser's credentials, which Grafana never forwards either.
func forwardedHeaders(r *http.Request) map[string]string {
	out := map[string]string{}
	for k, v := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Cookie", "Authorization":
			continue
		}
		out[k] = strings.Join(v, ", ")
	}
	return out
}

// parseGrafanaTime understands what Grafana's API accepts for from/to: epoch
// milliseconds, "now", and "now-<n><unit>" with s, m, h, d or w.
func parseGrafanaTime(v string, now time.Time) (time.Time, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	if v == "now" {
		return now.UTC(), nil
	}
	if rest, ok := strings.CutPrefix(v, "now-"); ok && len(rest) >= 2 {
		n, err := strconv.Atoi(rest[:len(rest)-1])
		unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[rest[len(rest)-1]]
		if err == nil && n >= 0 && unit > 0 {
			return now.Add(-time.Duration(n) * unit).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use epoch milliseconds, now or now-<n><s|m|h|d|w>", v)
}

type resourceWriter struct {
	w       http.ResponseWriter
	started bool
}

func (rw *resourceWriter) Send(resp *backend.CallResourceResponse) error {
	if !rw.started {
		rw.started = true
		for k, vs := range resp.Headers {
			for _, v := range vs {
				rw.w.Header().Add(k, v)
			}
		}
		status := resp.Status
		if status == 0 {
			status = http.StatusOK
		}
		rw.w.WriteHeader(status)
	}
	if len(resp.Body) > 0 {
		if _, err := rw.w.Write(resp.Body); err != nil {
			return err
		}
	}
	if f, ok := rw.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (h *Host) handleResource(w http.ResponseWriter, r *http.Request) {
	ds, user, ok := h.caller(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	path := r.PathValue("path")
	target := path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	headers := map[string][]string{}
	for k, v := range r.Header {
		if k == "Cookie" || k == "Authorization" {
			continue
		}
		headers[k] = v
	}
	req := &backend.CallResourceRequest{
		PluginContext: h.pluginContext(ds, user),
		Path:          path,
		Method:        r.Method,
		URL:           target,
		Headers:       headers,
		Body:          body,
	}
	rw := &resourceWriter{w: w}
	if err := h.opts.Backend.CallResource(r.Context(), req, rw); err != nil {
		if !rw.started {
			writeMessage(w, http.StatusInternalServerError, "Failed to call resource: "+err.Error())
		}
		return
	}
	if !rw.started {
		writeMessage(w, http.StatusInternalServerError, "Failed to call resource: the plugin sent no answer")
	}
}

// healthAnswer is Grafana's answer to GET /api/datasources/uid/{uid}/health.
type healthAnswer struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Details json.RawMessage `json:"details,omitempty"`
}

func (h *Host) handleHealth(w http.ResponseWriter, r *http.Request) {
	ds, user, ok := h.caller(w, r)
	if !ok {
		return
	}
	// Grafana gives a health check its own deadline; 30 s covers the
	// plugin's per-agent timeouts.
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	res, err := h.opts.Backend.CheckHealth(ctx, &backend.CheckHealthRequest{
		PluginContext: h.pluginContext(ds, user),
		Headers:       forwardedHeaders(r),
	})
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "Plugin health check failed: "+err.Error())
		return
	}
	answer := healthAnswer{Status: res.Status.String(), Message: res.Message}
	if len(res.JSONDetails) > 0 {
		if !json.Valid(res.JSONDetails) {
			writeMessage(w, http.StatusInternalServerError, "Plugin health check failed: details are not JSON")
			return
		}
		answer.Details = res.JSONDetails
	}
	status := http.StatusOK
	if res.Status != backend.HealthStatusOk {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, answer)
}

// harnessDatasource is a datasource as the browser may see it: secrets only
// as "is set" flags, as Grafana's datasource API shows them.
type harnessDatasource struct {
	ID               int64           `json:"id"`
	UID              string          `json:"uid"`
	Name             string          `json:"name"`
	Type             string          `json:"type"`
	URL              string          `json:"url"`
	JSONData         json.RawMessage `json:"jsonData"`
	SecureJSONFields map[string]bool `json:"secureJsonFields"`
}

func (h *Host) handleHarnessDatasources(w http.ResponseWriter, _ *http.Request) {
	out := make([]harnessDatasource, 0, len(h.opts.Datasources))
	for _, ds := range h.opts.Datasources {
		out = append(out, harnessDatasource{
			ID: ds.ID, UID: ds.UID, Name: ds.Name, Type: ds.Type, URL: ds.URL,
			JSONData: ds.JSONData, SecureJSONFields: ds.SecureJSONFields(),
		})
	}
	writeJSON(w, http.StatusOK, out)
}
