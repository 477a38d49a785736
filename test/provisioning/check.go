// Package provisioning checks Vigil's Grafana provisioning files against the fields Grafana
// documents for each kind (datasources, plugins, dashboard providers, dashboards, alerting):
// unknown keys, a missing uid or condition, a condition that is not a refId, and datasource uids
// that match nothing provisioned. Grafana itself ignores unknown keys and logs bad rules at start,
// so a typo would otherwise surface as a silently missing alert.
package provisioning

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Kind is what a provisioning file provisions; it follows from the folder it is in.
type Kind string

const (
	Datasources       Kind = "datasources"
	Plugins           Kind = "plugins"
	DashboardProvider Kind = "dashboard provider"
	Dashboard         Kind = "dashboard"
	Alerting          Kind = "alerting"
)

// Problem is one finding, with the file and the key path it is about.
type Problem struct {
	File string
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Path, p.Msg)
}

// Known is what the checked tree provisions, for cross-file references.
type Known struct {
	// DatasourceUIDs maps each provisioned datasource uid to its type.
	DatasourceUIDs map[string]string
}

func (k Known) hasType(typ string) bool {
	for _, t := range k.DatasourceUIDs {
		if t == typ {
			return true
		}
	}
	return false
}

// Fields Grafana documents for each kind (docs/sources/administration/provisioning and
// alerting/set-up/provision-alerting-resources/file-provisioning). A nil value marks a free-form
// object (jsonData, a query model) whose keys belong to the plugin.
type fields map[string]*shape

type shape struct {
	fields   fields // an object with these keys
	items    *shape // a list of these
	required []string
	free     bool // any keys
}

func obj(required []string, f fields) *shape { return &shape{fields: f, required: required} }
func list(item *shape) *shape                { return &shape{items: item} }

var (
	scalar = &shape{}
	free   = &shape{free: true}
)

var datasourceFile = obj([]string{"apiVersion"}, fields{
	"apiVersion": scalar,
	"prune":      scalar,
	"deleteDatasources": list(obj([]string{"name"}, fields{
		"name": scalar, "orgId": scalar,
	})),
	"datasources": list(obj([]string{"name", "type", "uid"}, fields{
		"name": scalar, "type": scalar, "uid": scalar, "access": scalar, "orgId": scalar, "url": scalar,
		"user": scalar, "database": scalar, "basicAuth": scalar, "basicAuthUser": scalar,
		"withCredentials": scalar, "isDefault": scalar, "jsonData": free, "secureJsonData": free,
		"version": scalar, "editable": scalar, "correlations": free,
	})),
})

var pluginFile = obj([]string{"apiVersion"}, fields{
	"apiVersion": scalar,
	"apps": list(obj([]string{"type"}, fields{
		"type": scalar, "org_id": scalar, "org_name": scalar, "disabled": scalar, "jsonData": free,
		"secureJsonData": free,
	})),
})

var providerFile = obj([]string{"apiVersion"}, fields{
	"apiVersion": scalar,
	"providers": list(obj([]string{"name", "options"}, fields{
		"name": scalar, "orgId": scalar, "folder": scalar, "folderUid": scalar, "type": scalar,
		"disableDeletion": scalar, "updateIntervalSeconds": scalar, "allowUiUpdates": scalar,
		"options": obj([]string{"path"}, fields{"path": scalar, "foldersFromFilesStructure": scalar}),
	})),
})

var relativeTimeRange = obj([]string{"from", "to"}, fields{"from": scalar, "to": scalar})

var alertRule = obj([]string{"uid", "title", "condition", "data"}, fields{
	"uid": scalar, "title": scalar, "condition": scalar, "dashboardUid": scalar, "panelId": scalar,
	"noDataState": scalar, "execErrState": scalar, "for": scalar, "keepFiringFor": scalar,
	"annotations": free, "labels": free, "isPaused": scalar, "notification_settings": free,
	"record": free, "missingSeriesEvalsToResolve": scalar,
	"data": list(obj([]string{"refId", "datasourceUid", "model"}, fields{
		"refId": scalar, "queryType": scalar, "relativeTimeRange": relativeTimeRange,
		"datasourceUid": scalar, "model": free,
	})),
})

var alertingFile = obj([]string{"apiVersion"}, fields{
	"apiVersion": scalar,
	"groups": list(obj([]string{"name", "folder", "interval", "rules"}, fields{
		"orgId": scalar, "name": scalar, "folder": scalar, "interval": scalar, "rules": list(alertRule),
	})),
	"deleteRules": list(obj([]string{"uid"}, fields{"orgId": scalar, "uid": scalar})),
	"templates": list(obj([]string{"name", "template"}, fields{
		"orgId": scalar, "name": scalar, "template": scalar,
	})),
	"deleteTemplates":     list(obj([]string{"name"}, fields{"orgId": scalar, "name": scalar})),
	"contactPoints":       list(free),
	"deleteContactPoints": list(free),
	"policies":            list(free),
	"resetPolicies":       list(scalar),
	"muteTimes":           list(free),
	"deleteMuteTimes":     list(free),
})

// The dashboard JSON model's top-level keys (docs/sources/dashboards/build-dashboards/view-dashboard-json-model).
var dashboardTop = map[string]bool{
	"id": true, "uid": true, "title": true, "description": true, "tags": true, "style": true,
	"timezone": true, "editable": true, "graphTooltip": true, "hideControls": true, "time": true,
	"timepicker": true, "templating": true, "annotations": true, "refresh": true,
	"schemaVersion": true, "version": true, "panels": true, "links": true, "liveNow": true,
	"fiscalYearStartMonth": true, "weekStart": true, "gnetId": true, "__inputs": true,
	"__requires": true, "__elements": true,
}

var (
	noDataStates  = map[string]bool{"OK": true, "NoData": true, "Alerting": true, "KeepLast": true}
	execErrStates = map[string]bool{"OK": true, "Error": true, "Alerting": true, "KeepLast": true}
	ruleUID       = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)
	variableRef   = regexp.MustCompile(`^\$\{?([A-Za-z0-9_]+)(:[a-z]+)?\}?$`)
	// Datasources every Grafana has: expressions, the built-in Grafana datasource, mixed, dashboard.
	builtinDatasource = map[string]bool{
		"__expr__": true, "-- Grafana --": true, "grafana": true, "-- Mixed --": true, "-- Dashboard --": true,
	}
)

type checker struct {
	file     string
	known    Known
	problems []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// shape walks a decoded document against its shape.
func (c *checker) shape(path string, v any, s *shape) {
	if s == nil || s.free || v == nil {
		return
	}
	switch {
	case s.items != nil:
		items, ok := v.([]any)
		if !ok {
			c.add(path, "must be a list")
			return
		}
		for i, item := range items {
			c.shape(fmt.Sprintf("%s[%d]", path, i), item, s.items)
		}
	case s.fields != nil:
		m, ok := v.(map[string]any)
		if !ok {
			c.add(path, "must be an object")
			return
		}
		for _, key := range sortedKeys(m) {
			sub, known := s.fields[key]
			if !known {
				c.add(join(path, key), "unknown key (Grafana ignores it): known keys are %s", strings.Join(sortedShapeKeys(s.fields), ", "))
				continue
			}
			c.shape(join(path, key), m[key], sub)
		}
		for _, req := range s.required {
			if val, ok := m[req]; !ok || val == nil || val == "" {
				c.add(join(path, req), "is required")
			}
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedShapeKeys(f fields) []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *checker) datasourceUID(path, uid string, vars map[string]string) {
	if uid == "" || builtinDatasource[uid] {
		return
	}
	if m := variableRef.FindStringSubmatch(uid); m != nil {
		typ, ok := vars[m[1]]
		if !ok {
			c.add(path, "datasource %q names no datasource variable of this dashboard", uid)
		} else if !c.known.hasType(typ) {
			c.add(path, "datasource variable %q is of type %s, which nothing provisions", m[1], typ)
		}
		return
	}
	if _, ok := c.known.DatasourceUIDs[uid]; !ok {
		c.add(path, "datasource uid %q matches no provisioned datasource (known: %s)", uid, strings.Join(c.known.uids(), ", "))
	}
}

func (k Known) uids() []string {
	out := make([]string, 0, len(k.DatasourceUIDs))
	for uid := range k.DatasourceUIDs {
		out = append(out, uid)
	}
	sort.Strings(out)
	return out
}

func (c *checker) alerting(doc map[string]any) {
	groups, _ := doc["groups"].([]any)
	seen := map[string]bool{}
	for gi, g := range groups {
		group, _ := g.(map[string]any)
		gpath := fmt.Sprintf("groups[%d]", gi)
		if iv, ok := group["interval"].(string); ok {
			if _, err := time.ParseDuration(iv); err != nil {
				c.add(join(gpath, "interval"), "%q is not a duration", iv)
			}
		}
		rules, _ := group["rules"].([]any)
		for ri, r := range rules {
			rule, _ := r.(map[string]any)
			path := fmt.Sprintf("%s.rules[%d]", gpath, ri)
			uid, _ := rule["uid"].(string)
			if uid != "" && !ruleUID.MatchString(uid) {
				c.add(join(path, "uid"), "%q must be 1 to 40 letters, digits, '-' or '_'", uid)
			}
			if seen[uid] && uid != "" {
				c.add(join(path, "uid"), "%q is used twice", uid)
			}
			seen[uid] = true
			refIDs := map[string]bool{}
			data, _ := rule["data"].([]any)
			for qi, q := range data {
				query, _ := q.(map[string]any)
				qpath := fmt.Sprintf("%s.data[%d]", path, qi)
				ref, _ := query["refId"].(string)
				refIDs[ref] = true
				dsUID, _ := query["datasourceUid"].(string)
				c.datasourceUID(join(qpath, "datasourceUid"), dsUID, nil)
				if model, ok := query["model"].(map[string]any); ok {
					if mref, ok := model["refId"].(string); ok && mref != ref {
						c.add(join(qpath, "model.refId"), "%q differs from the query's refId %q", mref, ref)
					}
				}
			}
			if cond, ok := rule["condition"].(string); ok && cond != "" && !refIDs[cond] {
				c.add(join(path, "condition"), "%q is not the refId of one of the rule's queries", cond)
			}
			if s, ok := rule["noDataState"].(string); ok && !noDataStates[s] {
				c.add(join(path, "noDataState"), "%q is not one of OK, NoData, Alerting, KeepLast", s)
			}
			if s, ok := rule["execErrState"].(string); ok && !execErrStates[s] {
				c.add(join(path, "execErrState"), "%q is not one of OK, Error, Alerting, KeepLast", s)
			}
			if f, ok := rule["for"].(string); ok {
				if _, err := time.ParseDuration(f); err != nil {
					c.add(join(path, "for"), "%q is not a duration", f)
				}
			}
		}
	}
}

func (c *checker) dashboard(doc map[string]any) {
	for _, key := range sortedKeys(doc) {
		if !dashboardTop[key] {
			c.add(key, "unknown dashboard key")
		}
	}
	for _, req := range []string{"uid", "title"} {
		if s, _ := doc[req].(string); s == "" {
			c.add(req, "is required")
		}
	}
	vars := map[string]string{}
	templating, _ := doc["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	for _, v := range list {
		variable, _ := v.(map[string]any)
		if variable["type"] == "datasource" {
			name, _ := variable["name"].(string)
			query, _ := variable["query"].(string)
			vars[name] = query
		}
	}
	for i, v := range list {
		variable, _ := v.(map[string]any)
		c.datasourceRef(fmt.Sprintf("templating.list[%d].datasource", i), variable["datasource"], vars)
	}
	annotations, _ := doc["annotations"].(map[string]any)
	alist, _ := annotations["list"].([]any)
	for i, a := range alist {
		annotation, _ := a.(map[string]any)
		c.datasourceRef(fmt.Sprintf("annotations.list[%d].datasource", i), annotation["datasource"], vars)
	}
	var walk func(path string, panels []any)
	walk = func(path string, panels []any) {
		for i, p := range panels {
			panel, _ := p.(map[string]any)
			ppath := fmt.Sprintf("%s[%d]", path, i)
			c.datasourceRef(join(ppath, "datasource"), panel["datasource"], vars)
			targets, _ := panel["targets"].([]any)
			for ti, t := range targets {
				target, _ := t.(map[string]any)
				c.datasourceRef(fmt.Sprintf("%s.targets[%d].datasource", ppath, ti), target["datasource"], vars)
			}
			if nested, ok := panel["panels"].([]any); ok {
				walk(join(ppath, "panels"), nested)
			}
		}
	}
	panels, _ := doc["panels"].([]any)
	walk("panels", panels)
}

func (c *checker) datasourceRef(path string, ref any, vars map[string]string) {
	switch r := ref.(type) {
	case string:
		c.datasourceUID(path, r, vars)
	case map[string]any:
		uid, _ := r["uid"].(string)
		c.datasourceUID(join(path, "uid"), uid, vars)
	}
}

// KindOf tells a provisioning file's kind from its place under the provisioning root; ok is false
// for files Grafana does not read (READMEs).
func KindOf(rel string) (Kind, bool) {
	ext := filepath.Ext(rel)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) < 2 {
		return "", false
	}
	yamlFile := ext == ".yaml" || ext == ".yml"
	switch parts[0] {
	case "datasources":
		return Datasources, yamlFile
	case "plugins":
		return Plugins, yamlFile
	case "alerting":
		return Alerting, yamlFile || ext == ".json"
	case "dashboards":
		if len(parts) == 2 && yamlFile {
			return DashboardProvider, true
		}
		return Dashboard, ext == ".json"
	}
	return "", false
}

func decode(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if filepath.Ext(path) == ".json" {
		err = json.Unmarshal(raw, &doc)
	} else {
		err = yaml.Unmarshal(raw, &doc)
	}
	if err != nil {
		return nil, fmt.Errorf("does not parse: %w", err)
	}
	return doc, nil
}

// CheckFile checks one file of the given kind.
func CheckFile(path string, kind Kind, known Known) []Problem {
	c := &checker{file: path, known: known}
	doc, err := decode(path)
	if err != nil {
		c.add("", "%v", err)
		return c.problems
	}
	switch kind {
	case Datasources:
		c.shape("", doc, datasourceFile)
	case Plugins:
		c.shape("", doc, pluginFile)
	case DashboardProvider:
		c.shape("", doc, providerFile)
	case Alerting:
		c.shape("", doc, alertingFile)
		c.alerting(doc)
	case Dashboard:
		c.dashboard(doc)
	}
	return c.problems
}

// KnownIn reads the datasources a provisioning tree provisions.
func KnownIn(root string) (Known, error) {
	known := Known{DatasourceUIDs: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(root, "datasources", "*.y*ml"))
	if err != nil {
		return known, err
	}
	for _, f := range files {
		doc, err := decode(f)
		if err != nil {
			return known, fmt.Errorf("%s: %w", f, err)
		}
		list, _ := doc["datasources"].([]any)
		for _, d := range list {
			ds, _ := d.(map[string]any)
			uid, _ := ds["uid"].(string)
			typ, _ := ds["type"].(string)
			if uid != "" {
				known.DatasourceUIDs[uid] = typ
			}
		}
	}
	return known, nil
}

// Check checks every file under a provisioning root.
func Check(root string) ([]Problem, error) {
	known, err := KnownIn(root)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if kind, ok := KindOf(rel); ok {
			problems = append(problems, CheckFile(path, kind, known)...)
		}
		return nil
	})
	return problems, err
}
