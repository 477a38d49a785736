package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/internal/agentproc"
)

func TestRunServesUntilCancelled(t *testing.T) {
	agentproc.SkipShort(t, "builds the backend executable (go build)")
	dir := t.TempDir()
	bin := filepath.Join(dir, "gpx_vigil")
	build := exec.Command("go", "build", "-o", bin, "github.com/vigil-cdp/vigil/cmd/gpx_vigil")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build gpx_vigil: %v\n%s", err, out)
	}
	t.Setenv("VIGIL_READ_TOKEN", "main-read-s3cret")
	t.Setenv("VIGIL_CONTROL_TOKEN", "main-control-s3cret")
	provisioning := filepath.Join("..", "..", "..", "..", "provisioning", "datasources", "vigil-cdp.yaml")
	harness := t.TempDir()
	if err := os.WriteFile(filepath.Join(harness, "index.html"), []byte("<html>vigil harness</html>"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--plugin", bin, "--provisioning", provisioning, "--harness", harness}, stdoutW, &stderr)
		stdoutW.Close()
	}()

	lines := bufio.NewScanner(stdoutR)
	if !lines.Scan() {
		t.Fatalf("no line on stdout; run returned %v; stderr:\n%s", <-done, stderr.String())
	}
	first := lines.Text()
	if !regexp.MustCompile(`^listening on http://127\.0\.0\.1:\d+$`).MatchString(first) {
		t.Fatalf("first line = %q", first)
	}
	base := strings.TrimPrefix(first, "listening on ")

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(base+"/api/ds/query", "application/json",
		strings.NewReader(`{"queries":[{"refId":"A","datasource":{"uid":"vigil-cdp","type":"vigil-cdp-datasource"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"demo-standalone","demo-node-a","demo-node-b"`) {
		t.Errorf("query: %d %s", resp.StatusCode, body)
	}
	resp, err = client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "<html>vigil harness</html>" {
		t.Errorf("harness page = %q", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	if lines.Scan() {
		t.Errorf("more than one line on stdout: %q", lines.Text())
	}
}

func TestRunRequiresFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--plugin", "x"}, &out, &errOut)
	if err == nil || err.Error() != "--plugin and --provisioning are required" {
		t.Errorf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q", out.String())
	}
}
