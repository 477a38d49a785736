package plugin

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// identity is a datasource as Grafana identifies it. A UID is unique only
// within one organisation (the shipped provisioning file gives every org
// "vigil-cdp"), so the numeric ID, unique in Grafana's database, and the
// org come with it. Every monitor, history folder, tracker and cache is
// keyed by the whole identity, never by the UID alone.
type identity struct {
	org int64 // 0 when the request did not say
	id  int64
	uid string
}

// identityOf reads the identity from the settings and, for the org, from
// the request context the SDK builds the instance in.
func identityOf(ctx context.Context, s backend.DataSourceInstanceSettings) identity {
	return identity{org: orgOf(backend.PluginConfigFromContext(ctx)), id: s.ID, uid: s.UID}
}

// orgOf is the request's organisation: OrgID, else the namespace Grafana
// derives from it ("default" is org 1, "org-N" is org N).
func orgOf(pc backend.PluginContext) int64 {
	//lint:ignore SA1019 Grafana sends OrgID with every call; Namespace, which replaces it, is read when OrgID is 0
	if org := pc.OrgID; org > 0 {
		return org
	}
	switch ns := pc.Namespace; {
	case ns == "default":
		return 1
	case strings.HasPrefix(ns, "org-"):
		if n, err := strconv.ParseInt(strings.TrimPrefix(ns, "org-"), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// key names the identity in the registry and as the history folder.
func (i identity) key() string {
	return fmt.Sprintf("org%d-id%d-%s", i.org, i.id, safeName(i.uid))
}

// String is the identity in logs and messages.
func (i identity) String() string {
	return fmt.Sprintf("%q (ID %d, org %d)", i.uid, i.id, i.org)
}

// sameOrg reports whether a request from org may use this datasource: a
// request that names another org is refused even if the SDK handed it this
// instance.
func (i identity) sameOrg(pc backend.PluginContext) bool {
	org := orgOf(pc)
	return org == 0 || i.org == 0 || org == i.org
}

// safeName keeps a UID usable as (part of) one folder name.
func safeName(uid string) string {
	if uid == "" {
		return "default"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, uid)
}
