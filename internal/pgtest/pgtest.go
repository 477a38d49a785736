// Package pgtest starts a private PostgreSQL server for one test: a new
// cluster (initdb) in a temporary directory, listening on a free loopback
// port and on a socket in that directory, stopped and removed when the test
// ends. Nothing outside the directory is touched: no default cluster, no
// system service. As root (CI), the server runs as the postgres user, since
// PostgreSQL refuses to run as root.
//
// Tests that need it are skipped under -short, and when no PostgreSQL is
// installed (.ci/run installs Debian's package without its default cluster).
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running private PostgreSQL.
type Server struct {
	t    testing.TB
	dir  string
	bin  string
	port int
	as   *user.User
}

// DSN is a connection string for the database "postgres" as the superuser
// "vigil" (trust authentication, loopback only).
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://vigil@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Port is the loopback port it listens on.
func (s *Server) Port() int { return s.port }

// Bin finds the newest installed PostgreSQL's binaries (Debian's layout), or "".
func Bin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	return ""
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start starts a server for t; it is stopped and its directory removed when
// t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts a PostgreSQL server")
	}
	bin := Bin()
	if bin == "" {
		t.Skip("PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)")
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user to run the server: %v", err)
		}
		s.as = u
	}
	dir, err := os.MkdirTemp("", "vigil-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(s.remove)
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "vigil", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", s.port, dir)
		out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "30", "start")
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (fast shutdown); a stopped server stays stopped.
func (s *Server) Stop() {
	if _, err := os.Stat(filepath.Join(s.dir, "data", "postmaster.pid")); err != nil {
		return
	}
	if out, err := s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		s.t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Kill kills the server's postmaster with SIGKILL, as a crash would.
func (s *Server) Kill() {
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "postmaster.pid"))
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Its backends end once the postmaster is gone; wait for the port to close.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	// What a crash leaves: the pid file and the socket's lock (a real
	// server's init script, or the operator, removes them the same way).
	_ = os.Remove(filepath.Join(s.dir, "data", "postmaster.pid"))
	_ = os.Remove(filepath.Join(s.dir, fmt.Sprintf(".s.PGSQL.%d.lock", s.port)))
	_ = os.Remove(filepath.Join(s.dir, fmt.Sprintf(".s.PGSQL.%d", s.port)))
}

// Restart starts a stopped or killed server again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	data := filepath.Join(s.dir, "data")
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", s.port, s.dir)
	if out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "30", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		s.t.Fatalf("pg_ctl start again: %v\n%s\n%s", err, out, log)
	}
}

func (s *Server) remove() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// run runs one of PostgreSQL's programs, as the postgres user when root.
func (s *Server) run(program string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, program), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.dir}
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	return cmd.CombinedOutput()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
