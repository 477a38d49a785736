package main

import (
	"context"
	"errors"
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
	"time"
)

// serverSettings are the PostgreSQL settings of the benchmark's server,
// chosen for this machine (2 cores, 24 GiB, one virtual disk), as a
// dedicated history database of that size would be configured. Durability
// is PostgreSQL's default (fsync, synchronous_commit, full_page_writes on).
var serverSettings = [][2]string{
	{"shared_buffers", "2GB"},
	{"effective_cache_size", "16GB"},
	{"work_mem", "32MB"},
	{"maintenance_work_mem", "1GB"},
	{"wal_buffers", "64MB"},
	{"max_wal_size", "8GB"},
	{"min_wal_size", "1GB"},
	{"checkpoint_timeout", "15min"},
	{"checkpoint_completion_target", "0.9"},
	{"random_page_cost", "1.1"},
	{"effective_io_concurrency", "200"},
	{"max_connections", "50"},
	{"max_worker_processes", "4"},
	{"max_parallel_workers", "2"},
	{"max_parallel_workers_per_gather", "1"},
	{"max_parallel_maintenance_workers", "1"},
	{"fsync", "on"},
	{"synchronous_commit", "on"},
	{"full_page_writes", "on"},
	{"autovacuum", "on"},
	{"jit", "on"},
	{"log_checkpoints", "on"},
	{"log_autovacuum_min_duration", "10s"},
}

// server is a private PostgreSQL cluster in dir/data, listening on a
// loopback port and on a socket in dir, run as the postgres user when this
// program runs as root (PostgreSQL refuses to run as root).
type server struct {
	dir  string
	bin  string
	port int
	as   *user.User
}

func (s *server) data() string { return filepath.Join(s.dir, "data") }

// DSN is a connection string for the database "postgres" as the superuser
// "vigil" (trust authentication, loopback only).
func (s *server) DSN() string {
	return fmt.Sprintf("postgres://vigil@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// pgBin finds the newest installed PostgreSQL's binaries (Debian's layout).
func pgBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	ver := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	sort.Slice(dirs, func(i, j int) bool { return ver(dirs[i]) > ver(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/pg_ctl (install Debian's postgresql package)")
}

// newServer prepares dir for a server: a new cluster when dir/data does
// not exist yet, the existing one otherwise (-keep).
func newServer(dir string) (*server, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user to run the server: %w", err)
		}
		s.as = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(s.data()); err == nil {
		return s, nil
	}
	if out, err := s.run("initdb", "-D", s.data(), "-U", "vigil", "--auth=trust", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	var conf strings.Builder
	conf.WriteString("\n# vigil history benchmark\n")
	for _, kv := range serverSettings {
		fmt.Fprintf(&conf, "%s = '%s'\n", kv[0], kv[1])
	}
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(conf.String()); err != nil {
		f.Close()
		return nil, err
	}
	return s, f.Close()
}

// start starts the server on a free loopback port.
func (s *server) start() error {
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.port = port
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", s.port, s.dir)
		out, err := s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-o", opts, "-w", "-t", "120", "start")
		if err == nil {
			return nil
		}
		last = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, tail(filepath.Join(s.dir, "server.log"), 2000))
	}
	return last
}

// stop stops the server (fast shutdown) if it runs.
func (s *server) stop() error {
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err != nil {
		return nil
	}
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", "fast", "-w", "-t", "300", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// postmaster is the server's main process id.
func (s *server) postmaster() int {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

// cpuSeconds is the CPU time the server's processes used so far: the
// postmaster's own and that of its children that ended (cutime, cstime),
// and that of the children that run now.
func (s *server) cpuSeconds() float64 {
	pm := s.postmaster()
	if pm == 0 {
		return 0
	}
	const hz = 100 // USER_HZ on Linux
	total := 0.0
	if f, ok := procStat(pm); ok {
		total += float64(f.utime + f.stime + f.cutime + f.cstime)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pm {
			continue
		}
		if f, ok := procStat(pid); ok && f.ppid == pm {
			total += float64(f.utime + f.stime)
		}
	}
	return total / hz
}

type statFields struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procStat reads /proc/PID/stat (fields after the command's closing
// parenthesis, which may itself contain spaces).
func procStat(pid int) (statFields, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return statFields{}, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return statFields{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return statFields{}, false
	}
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	return statFields{ppid: int(n(4)), utime: n(14), stime: n(15), cutime: n(16), cstime: n(17)}, true
}

// run runs one of PostgreSQL's programs, as the postgres user when root,
// in a session of its own: a Ctrl-C in the terminal reaches this program,
// which stops the server in order, and not the server directly.
func (s *server) run(program string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, program), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + s.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the end of a file, for error messages.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
