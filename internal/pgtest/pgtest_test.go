package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "select 1").Scan(&one)
}

// A private server starts, answers, survives a SIGKILL and a restart on the
// same port, and leaves no process and no directory behind.
func TestServer(t *testing.T) {
	var dir string
	t.Run("run", func(t *testing.T) {
		s := Start(t)
		dir = s.dir
		if err := query(t, s.DSN()); err != nil {
			t.Fatalf("select 1: %v", err)
		}
		s.Kill()
		if err := query(t, s.DSN()); err == nil {
			t.Fatal("the killed server still answers")
		}
		s.Restart()
		if err := query(t, s.DSN()); err != nil {
			t.Fatalf("after the restart: %v", err)
		}
	})
	if dir == "" {
		return // skipped
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", dir, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), dir) {
			t.Errorf("a process of the server outlived it: %s", strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
