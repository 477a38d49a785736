package pluginpackage

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// requiredBinaryPerm is the mode backend executables must have once extracted.
const requiredBinaryPerm fs.FileMode = 0o755

// extractedPerm is the permission a file gets when the validator extracts it:
// the zip mode filtered by the usual umask 022.
func extractedPerm(m fs.FileMode) fs.FileMode { return m.Perm() &^ 0o022 }

// binaryPlatform reads GOOS/GOARCH from the Go build info embedded in a binary.
func binaryPlatform(b []byte) (goos, goarch string, err error) {
	info, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		return "", "", err
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	return goos, goarch, nil
}

// executableDir returns the archive directory that holds the binaries of the
// plugin.json at key, and the executable's base name.
func (c *checker) executableDir(key string, m *metadata) (string, string) {
	return joinPath(c.root, dirOf(key), dirOf(m.Executable)), path.Base(m.Executable)
}

// backendbinary: executable, backend and alerting flags agree, and a linux/amd64 binary exists.
// Like the validator, it stops at the first problem.
func (c *checker) checkBackendBinary() {
	if !c.rootOK || !c.nestedOK {
		return
	}
	c.ran("backendbinary")
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		where := c.inRoot(k)
		if m.Alerting && !m.Backend {
			c.add("backendbinary", "alerting-found-but-backend-false", SeverityError,
				fmt.Sprintf("%s declares alerting=true but backend=false", where), "Set backend=true.")
			return
		}
		if m.Executable != "" && !m.Backend {
			c.add("backendbinary", "backend-found-but-not-declared", SeverityError,
				fmt.Sprintf("%s declares executable %q but backend=false", where, m.Executable),
				"Set backend=true or remove executable.")
			return
		}
		if m.Backend && m.Executable == "" {
			c.add("backendbinary", "backend-binary-mission", SeverityError,
				fmt.Sprintf("%s declares backend=true but no executable", where),
				"Add an executable to plugin.json or set backend=false.")
			return
		}
		if m.Executable == "" {
			continue
		}
		dir, base := c.executableDir(k, m)
		var found []string
		for _, f := range c.arc.under(dir) {
			if dirOf(f) == dir && strings.HasPrefix(path.Base(f), base) {
				found = append(found, f)
			}
		}
		if len(found) == 0 {
			c.add("backendbinary", "backend-binary-mission", SeverityError,
				fmt.Sprintf("no backend binaries %s* found for executable %q declared in %s", joinPath(dir, base), m.Executable, where),
				"Build the backend (mage -v buildAll) before packaging.")
			return
		}
		amd64 := false
		for _, f := range found {
			b, err := c.arc.read(f)
			if err != nil {
				continue
			}
			if goos, goarch, err := binaryPlatform(b); err == nil && goos == "linux" && goarch == "amd64" {
				amd64 = true
				break
			}
		}
		if !amd64 {
			c.add("backendbinary", "backend-binary-not-linux-amd64", SeverityError,
				fmt.Sprintf("none of the backend binaries for %s (%s) is a Go binary built for linux/amd64", where, strings.Join(found, ", ")),
				"Grafana requires a linux/amd64 backend binary.")
			return
		}
	}
}

// backenddebug: standalone.txt / pid.txt debug files are not shipped.
func (c *checker) checkBackendDebug() {
	if !c.rootOK || !c.nestedOK {
		return
	}
	hasExec := false
	for _, m := range c.nested {
		if m.Executable != "" {
			hasExec = true
		}
	}
	c.ran("backenddebug")
	if !hasExec {
		return
	}
	for _, f := range c.arc.under(c.root) {
		if b := path.Base(f); b == "standalone.txt" || b == "pid.txt" {
			c.add("backenddebug", "backend-debug-file-present", SeverityError,
				fmt.Sprintf("found standalone backend debug file %s", f),
				"This file makes the plugin unusable outside debug mode; remove it from the package.")
		}
	}
}

// binarypermissions: every non-Windows backend binary extracts with mode 0755.
func (c *checker) checkBinaryPermissions() {
	if !c.rootOK || !c.nestedOK {
		return
	}
	c.ran("binarypermissions")
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		if m.Executable == "" {
			continue
		}
		dir, base := c.executableDir(k, m)
		var found []string
		for _, f := range c.arc.under(dir) {
			af := c.arc.files[f]
			if !af.symlink && strings.HasPrefix(path.Base(f), base) {
				found = append(found, f)
			}
		}
		if len(found) == 0 {
			c.add("binarypermissions", "binary-executable-found", SeverityError,
				fmt.Sprintf("no binary found for executable %q defined in %s", m.Executable, c.inRoot(k)), "")
			continue
		}
		for _, f := range found {
			if path.Ext(f) == ".exe" {
				continue
			}
			perm := extractedPerm(c.arc.files[f].mode)
			if perm != requiredBinaryPerm {
				c.add("binarypermissions", "binary-executable-permissions", SeverityError,
					fmt.Sprintf("permissions for binary executable %s are incorrect (%04o found, %04o required)", f, perm, requiredBinaryPerm),
					"Store the binary in the zip with mode 0755 (zip preserves Unix modes when built with `zip` or `cd dist && zip -r`).")
			}
		}
	}
}

// vigil-backend: each executable ships for linux/amd64 and linux/arm64, and
// each binary's embedded GOOS/GOARCH matches its file name suffix.
func (c *checker) checkBackendArchitectures() {
	if !c.rootOK || !c.nestedOK {
		return
	}
	c.ran("vigil-backend")
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		if m.Executable == "" {
			continue
		}
		dir, base := c.executableDir(k, m)
		for _, arch := range []string{"amd64", "arm64"} {
			want := joinPath(dir, base+"_linux_"+arch)
			if !c.arc.isFile(want) {
				c.add("vigil-backend", "missing-platform-binary", SeverityError,
					fmt.Sprintf("missing backend binary %s for executable %q declared in %s", want, m.Executable, c.inRoot(k)),
					"Vigil ships linux/amd64 and linux/arm64 backends.")
			}
		}
		for _, f := range c.arc.under(dir) {
			name := path.Base(f)
			if dirOf(f) != dir || !strings.HasPrefix(name, base+"_") {
				continue
			}
			parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(name, base+"_"), ".exe"), "_")
			if len(parts) != 2 {
				continue
			}
			b, err := c.arc.read(f)
			if err != nil {
				continue
			}
			goos, goarch, err := binaryPlatform(b)
			if err != nil {
				c.add("vigil-backend", "binary-not-go", SeverityError,
					fmt.Sprintf("backend binary %s has no Go build info: %v", f, err), "")
				continue
			}
			if goos != parts[0] || goarch != parts[1] {
				c.add("vigil-backend", "binary-platform-mismatch", SeverityError,
					fmt.Sprintf("backend binary %s is built for %s/%s, not %s/%s", f, goos, goarch, parts[0], parts[1]), "")
			}
		}
	}
}
