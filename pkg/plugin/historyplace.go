package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Where a datasource keeps its history, in this order:
//
//  1. jsonData.historyPath;
//  2. <base>/vigil-cdp/<identity>, where base is Grafana's data folder:
//     GF_PATHS_DATA when Grafana forwards it (Grafana 12.4 forwards no host
//     environment to plugins unless [plugins] forward_host_env_vars names
//     them), else the folder that holds Grafana's plugins folder when the
//     plugin's executable lies in one named "plugins" (paths.plugins is
//     <data>/plugins unless configured otherwise), else /var/lib/grafana
//     (the deb and rpm packages' data folder) when it exists;
//  3. else <temporary folder>/vigil-cdp/<identity>, with a warning: a
//     reboot may lose it.
const (
	envDataPath      = "GF_PATHS_DATA"
	packagedDataPath = "/var/lib/grafana"
	historyFolder    = "vigil-cdp"
	// ownerFile in a history folder names the datasource it belongs to.
	ownerFile = "datasource.json"
)

// Where the history folder came from (historyPlace.Source).
const (
	sourceSetting    = "jsonData.historyPath"
	sourceEnv        = "GF_PATHS_DATA"
	sourceExecutable = "Grafana's data folder, found from the plugin's location"
	sourcePackaged   = packagedDataPath
	sourceTemp       = "the temporary folder"
)

// historyPlace is where a datasource's history lives and whether it
// survives a reboot.
type historyPlace struct {
	Dir     string `json:"path"`
	Source  string `json:"source"`
	Durable bool   `json:"durable"`
	// Note says why the history is not durable.
	Note string `json:"note,omitempty"`
	// legacy is the folder an earlier version kept this UID's history in
	// (<base>/vigil-cdp/<uid>); empty with jsonData.historyPath.
	legacy string
}

// placeHistory finds the history folder of ds.
func (ms *monitors) placeHistory(ds *Datasource) historyPlace {
	if ds.settings != nil && ds.settings.HistoryPath != "" {
		return ms.durability(historyPlace{Dir: filepath.Clean(ds.settings.HistoryPath), Source: sourceSetting})
	}
	base, source := ms.getenv(envDataPath), sourceEnv
	if base == "" {
		base, source = ms.dataFromExecutable(), sourceExecutable
	}
	if base == "" {
		if fi, err := os.Stat(ms.packagedData); err == nil && fi.IsDir() {
			base, source = ms.packagedData, sourcePackaged
		}
	}
	if base == "" {
		base, source = ms.tempDir(), sourceTemp
	}
	root := filepath.Join(base, historyFolder)
	return ms.durability(historyPlace{
		Dir:    filepath.Join(root, ds.ident.key()),
		Source: source,
		legacy: filepath.Join(root, safeName(ds.ident.uid)),
	})
}

// dataFromExecutable is the parent of the "plugins" folder the plugin's
// executable lies in (<data>/plugins/vigil-cdp-app/datasource/gpx_vigil_*),
// when that parent is a folder the plugin may write to.
func (ms *monitors) dataFromExecutable() string {
	exe, err := ms.executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	for dir := filepath.Dir(exe); ; {
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		if filepath.Base(dir) == "plugins" {
			if unix.Access(parent, unix.W_OK|unix.X_OK) != nil {
				return ""
			}
			return parent
		}
		dir = parent
	}
}

// durability marks a place in the temporary folder or on a tmpfs as lost
// at reboot.
func (ms *monitors) durability(p historyPlace) historyPlace {
	p.Durable = true
	tmp := filepath.Clean(ms.tempDir())
	if p.Source == sourceTemp || p.Dir == tmp || strings.HasPrefix(p.Dir, tmp+string(filepath.Separator)) {
		p.Durable = false
		p.Note = "it is in the temporary folder, which a reboot may empty: set jsonData.historyPath to a folder on a disk"
		return p
	}
	// The nearest folder that exists tells the file system.
	for dir := p.Dir; ; dir = filepath.Dir(dir) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil {
			if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
				p.Durable = false
				p.Note = "it is on a tmpfs, which a reboot empties: set jsonData.historyPath to a folder on a disk"
			}
			return p
		}
		if filepath.Dir(dir) == dir {
			return p
		}
	}
}

// owner is the content of ownerFile.
type owner struct {
	UID   string `json:"uid"`
	ID    int64  `json:"id"`
	OrgID int64  `json:"orgId"`
}

func ownerOf(i identity) owner { return owner{UID: i.uid, ID: i.id, OrgID: i.org} }

func (o owner) identity() identity { return identity{org: o.OrgID, id: o.ID, uid: o.UID} }

// claimHistory makes sure dir belongs to ident: a folder that names another
// datasource is refused, one that names none is marked as ident's. Fields
// a request did not know (org 0) match anything.
func claimHistory(dir string, ident identity) error {
	path := filepath.Join(dir, ownerFile)
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create history folder: %w", err)
		}
		encoded, _ := json.Marshal(ownerOf(ident))
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(encoded, '\n'), 0o600); err != nil {
			return fmt.Errorf("mark the history folder: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("mark the history folder: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	}
	var o owner
	if err := json.Unmarshal(raw, &o); err != nil || o.UID == "" {
		return fmt.Errorf("%s does not say which datasource the history belongs to (%s); remove it only if this folder is this datasource's history", path, describeBad(raw, err))
	}
	other := o.identity()
	if other.uid != ident.uid || other.id != ident.id || (other.org != 0 && ident.org != 0 && other.org != ident.org) {
		return fmt.Errorf("%s is the history of datasource %s, not of %s: give each datasource its own folder (if that datasource was deleted and this one should take its history over, remove %s)",
			dir, other, ident, path)
	}
	return nil
}

func describeBad(raw []byte, err error) string {
	if err != nil {
		return "not JSON: " + err.Error()
	}
	return fmt.Sprintf("no uid in %d bytes", len(raw))
}
