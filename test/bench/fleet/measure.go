// What the benchmark reads of its own process and of the machine, and the
// optional CPU load it puts on the machine.

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-cdp/vigil/test/bench/internal/procmem"
)

func raiseFileLimit(want uint64) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= want {
		return
	}
	l.Cur = want
	if l.Max < want {
		l.Max = want // root may raise the hard limit too
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		return
	}
	// Not root: as far as the hard limit allows.
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

type usage struct {
	wall time.Time
	cpu  time.Duration
}

func now() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return usage{wall: time.Now(), cpu: cpu}
}

// memory is this process's RSS and peak RSS (VmRSS, VmHWM) and Go heap in
// use, in MiB.
func memory() (rss, peak, heap float64) {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				rss = kb / 1024
			case "VmHWM:":
				peak = kb / 1024
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return rss, peak, float64(ms.HeapInuse) / (1 << 20)
}

// memoryParts says where this process's memory is, in MiB: goroutine
// stacks, the Go heap in use, heap the runtime holds but does not use, the
// runtime's own structures, file pages mapped (the history's bbolt file),
// and the number of goroutines.
func memoryParts() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	file := 0.0
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssFile:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				file = kb / 1024
			}
		}
	}
	other := ms.MSpanInuse + ms.MCacheInuse + ms.BuckHashSys + ms.GCSys + ms.OtherSys
	return fmt.Sprintf("stacks %.0f MiB, heap in use %.0f MiB, heap idle not returned %.0f MiB, runtime %.0f MiB, file pages %.0f MiB; %d goroutines; peak RSS without file pages %.0f MiB",
		mib(ms.StackInuse), mib(ms.HeapInuse), mib(ms.HeapIdle-ms.HeapReleased), mib(other), file, runtime.NumGoroutine(), float64(procmem.PeakAnonKB())/1024)
}

// ioCounters are this process's /proc/self/io: write system calls (files
// and sockets alike), bytes sent to the storage layer (write_bytes: counted
// when a page is dirtied), and bytes that never reached it because the file
// was truncated before the kernel wrote its pages out (cancelled_write_bytes:
// the history's journal).
type ioCounters struct {
	Syscw          int64 `json:"syscw"`
	WriteBytes     int64 `json:"writeBytes"`
	CancelledBytes int64 `json:"cancelledWriteBytes"`
}

func readIO() ioCounters {
	var c ioCounters
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return c
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscw":
			c.Syscw = n
		case "write_bytes":
			c.WriteBytes = n
		case "cancelled_write_bytes":
			c.CancelledBytes = n
		}
	}
	return c
}

func (c ioCounters) sub(o ioCounters) ioCounters {
	return ioCounters{Syscw: c.Syscw - o.Syscw, WriteBytes: c.WriteBytes - o.WriteBytes, CancelledBytes: c.CancelledBytes - o.CancelledBytes}
}

// disk is what reached the storage layer: write_bytes less cancelled_write_bytes.
func (c ioCounters) disk() int64 { return c.WriteBytes - c.CancelledBytes }

// fsType names the file system of dir; write_bytes counts nothing on tmpfs.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// load is the CPU load put on the machine during a steady part:
// "build" loops `go build -a ./...` in the module's folder (what the issue's
// measurements ran), "cpu:N" runs N processes that spin.
type load struct {
	spec   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	procs  map[int]bool // process group (leader's pid) → still running
	builds int
	failed int
}

// buildDir is the module's folder, where -load build builds.
var buildDir string

func checkLoad(spec string) error {
	if spec == "" {
		return nil
	}
	if spec == "build" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		mod := strings.TrimSpace(string(out))
		if err != nil || mod == "" || mod == os.DevNull {
			return fmt.Errorf("-load build: run from the module's folder (go env GOMOD: %q)", mod)
		}
		buildDir = filepath.Dir(mod)
		return nil
	}
	if n, ok := strings.CutPrefix(spec, "cpu:"); ok {
		if k, err := strconv.Atoi(n); err == nil && k > 0 {
			return nil
		}
	}
	return fmt.Errorf("-load %q: want build or cpu:N", spec)
}

// startLoad starts the load; stop ends it (every process it started, by
// process group) and says how many builds finished.
func startLoad(spec string) *load {
	l := &load{spec: spec, procs: map[int]bool{}}
	if spec == "" {
		return l
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	run := func(cmd *exec.Cmd) error {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		l.mu.Lock()
		if ctx.Err() != nil {
			l.mu.Unlock()
			return ctx.Err()
		}
		err := cmd.Start()
		if err == nil {
			l.procs[cmd.Process.Pid] = true
		}
		l.mu.Unlock()
		if err != nil {
			return err
		}
		err = cmd.Wait()
		l.mu.Lock()
		l.procs[cmd.Process.Pid] = false
		l.mu.Unlock()
		return err
	}
	if spec == "build" {
		// The builds run under a shell of their own, which waits for them:
		// a process's /proc/PID/io includes its reaped children's, so
		// builds reaped by this process would count their build cache's
		// writes as the history's. The shell is reaped after the figures
		// are read.
		cmd := exec.Command("sh", "-c", `failed=0
while [ "$failed" -lt 3 ]; do
	if go build -a ./... >/dev/null 2>&1; then echo built; failed=0; else echo failed; failed=$((failed+1)); fi
done`)
		cmd.Dir = buildDir
		out, err := cmd.StdoutPipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleet-bench: -load build:", err)
			return l
		}
		l.wg.Go(func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					l.mu.Lock()
					if sc.Text() == "built" {
						l.builds++
					} else if ctx.Err() == nil {
						l.failed++
					}
					l.mu.Unlock()
				}
			}()
			err := run(cmd)
			<-done
			if err != nil && ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "fleet-bench: -load build: go build -a ./... failed 3 times in a row; load stopped")
			}
		})
		return l
	}
	k, _ := strconv.Atoi(strings.TrimPrefix(spec, "cpu:"))
	for range k {
		l.wg.Go(func() { _ = run(exec.Command(os.Args[0], "burn")) })
	}
	return l
}

// stop ends the load; for build, it says how many builds finished.
func (l *load) stop() int {
	if l.cancel == nil {
		return 0
	}
	l.mu.Lock()
	l.cancel()
	for pgid, running := range l.procs {
		if running {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	return l.builds
}

func (l *load) describe() string { return loadName(l.spec) }

func loadName(spec string) string {
	switch spec {
	case "":
		return "none"
	case "build":
		return "go build -a ./... looping"
	}
	return strings.TrimPrefix(spec, "cpu:") + " spinning processes"
}

// burn spins until killed (or its parent is gone).
func burn() {
	ppid := os.Getppid()
	x := 1.0
	for i := 0; ; i++ {
		x = x*1.0000001 + 1e-9
		if i%(1<<24) == 0 && os.Getppid() != ppid {
			fmt.Fprint(os.Stderr, x)
			return
		}
	}
}
