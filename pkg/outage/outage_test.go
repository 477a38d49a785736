package outage

import (
	"testing"
	"time"

	"github.com/vigil-cdp/vigil/pkg/fleet"
	"github.com/vigil-cdp/vigil/pkg/response"
	"github.com/vigil-cdp/vigil/pkg/state"
)

const s = time.Second

func policy(edit func(p *fleet.Policy)) fleet.Policy {
	p := fleet.DefaultPolicy()
	if edit != nil {
		edit(&p)
	}
	return p
}

func secs(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, x := range n {
		out[i] = time.Duration(x) * s
	}
	return out
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name      string
		in        Inputs
		wantTotal time.Duration
		wantResp  time.Duration
		check     func(t *testing.T, b Budget)
	}{
		{name: "standalone, max: the largest allowance without failover",
			in: Inputs{Policy: policy(nil)}, wantTotal: 2*s + 180*s, wantResp: s},
		{name: "cluster member, max: failover applies",
			in: Inputs{Policy: policy(func(p *fleet.Policy) { p.Budget.Failover = 300 * s }), InCluster: true}, wantTotal: 2*s + 300*s, wantResp: s},
		{name: "standalone never gets failover, however large",
			in: Inputs{Policy: policy(func(p *fleet.Policy) { p.Budget.Failover = 300 * s })}, wantTotal: 2*s + 180*s, wantResp: s,
			check: func(t *testing.T, b Budget) {
				if _, ok := b.Allowance(Failover); ok {
					t.Error("failover applies to a standalone agent")
				}
			}},
		{name: "sum adds every applicable allowance",
			in:        Inputs{Policy: policy(func(p *fleet.Policy) { p.Budget.Combine = fleet.CombineSum }), InCluster: true},
			wantTotal: 2*s + 60*s + 180*s + 30*s + 60*s, wantResp: s},
		{name: "measured RTT p99 above the configured response time replaces it",
			in:        Inputs{Policy: policy(nil), RTTs: []time.Duration{100 * time.Millisecond, 3 * s, 200 * time.Millisecond}},
			wantTotal: 3*s + s + 180*s, wantResp: 3 * s},
		{name: "measured RTT below the configured response time: the floor holds",
			in: Inputs{Policy: policy(nil), RTTs: []time.Duration{10 * time.Millisecond}}, wantTotal: 2*s + 180*s, wantResp: s},
		{name: "all zero: the budget is zero",
			in: Inputs{Policy: policy(func(p *fleet.Policy) {
				p.Budget = fleet.Budget{Combine: fleet.CombineMax, Mode: fleet.ModeConfigured}
			})}, wantTotal: 0, wantResp: 0},
		{name: "measured mode, too few samples: configured values hold",
			in: Inputs{Policy: policy(func(p *fleet.Policy) { p.Budget.Mode = fleet.ModeMeasured }),
				Silences: map[Kind][]time.Duration{Restart: secs(20, 30, 40, 50)}},
			wantTotal: 2*s + 180*s, wantResp: s},
		{name: "measured mode, enough samples: the percentile replaces the configured value",
			in: Inputs{Policy: policy(func(p *fleet.Policy) { p.Budget.Mode = fleet.ModeMeasured }),
				Silences: map[Kind][]time.Duration{Restart: secs(20, 30, 40, 50, 45)}},
			wantTotal: 2*s + 60*s, wantResp: s, // restart learned 50 s, so app error recovery (60 s) is now the largest
			check: func(t *testing.T, b Budget) {
				a, _ := b.Allowance(Restart)
				if !a.Measured || a.Value != 50*s || a.Configured != 180*s || a.Samples != 5 {
					t.Errorf("restart allowance = %+v", a)
				}
			}},
		{name: "measured mode: clamped to the ceiling",
			in: Inputs{Policy: policy(func(p *fleet.Policy) {
				p.Budget.Mode = fleet.ModeMeasured
				p.Measured.Ceiling = 100 * s
			}), Silences: map[Kind][]time.Duration{Restart: secs(500, 500, 500, 500, 500)}},
			wantTotal: 2*s + 100*s, wantResp: s},
		{name: "measured mode: clamped to the floor",
			in: Inputs{Policy: policy(func(p *fleet.Policy) {
				p.Budget.Mode = fleet.ModeMeasured
				p.Measured.Floor = 10 * s
				p.Budget.Restart, p.Budget.AppErrorRecovery, p.Budget.NetworkInterruption = 0, 0, 0
			}), Silences: map[Kind][]time.Duration{Restart: secs(1, 1, 1, 1, 1)}},
			wantTotal: 2*s + 10*s, wantResp: s},
		{name: "configured mode ignores samples",
			in:        Inputs{Policy: policy(nil), Silences: map[Kind][]time.Duration{Restart: secs(1, 1, 1, 1, 1, 1)}},
			wantTotal: 2*s + 180*s, wantResp: s},
		{name: "measured failover from cluster samples",
			in: Inputs{Policy: policy(func(p *fleet.Policy) {
				p.Budget.Mode = fleet.ModeMeasured
				p.Budget.Restart, p.Budget.AppErrorRecovery, p.Budget.NetworkInterruption = 0, 0, 0
				p.Measured.Percentile = 50
			}), InCluster: true, Silences: map[Kind][]time.Duration{Failover: secs(10, 20, 30, 40, 50)}},
			wantTotal: 2*s + 30*s, wantResp: s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Compute(tt.in)
			if b.Total != tt.wantTotal || b.ResponseTime != tt.wantResp {
				t.Errorf("total %s response %s, want %s and %s (%+v)", b.Total, b.ResponseTime, tt.wantTotal, tt.wantResp, b)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	cluster := Compute(Inputs{Policy: policy(func(p *fleet.Policy) {
		p.Budget.Failover = 45 * s
	}), InCluster: true}) // base 2 s; network 32, failover 47, app 62, restart 182
	sum := Compute(Inputs{Policy: policy(func(p *fleet.Policy) {
		p.Budget.Combine = fleet.CombineSum
		p.Budget.Failover, p.Budget.Restart = 10*s, 20*s
		p.Budget.NetworkInterruption, p.Budget.AppErrorRecovery = 5*s, 5*s
	}), InCluster: true}) // base 2; network 7, app 12, failover 22, restart 42
	equal := Compute(Inputs{Policy: policy(nil), InCluster: true}) // failover and app error recovery both 60 s

	tests := []struct {
		name       string
		b          Budget
		silent     time.Duration
		wantState  state.State
		wantReason string
	}{
		{"within the response time", cluster, 1500 * time.Millisecond, state.Grace, "awaiting an answer: 1.5 s of 2 s"},
		{"spending the shortest explanation first", cluster, 12 * s, state.Grace, "awaiting network interruption: 12 s of 32 s"},
		{"network exhausted: failover next", cluster, 40 * s, state.Grace, "awaiting failover: 40 s of 47 s"},
		{"then app error recovery", cluster, 50 * s, state.Grace, "awaiting app error recovery: 50 s of 62 s"},
		{"then restart, up to the budget itself", cluster, 182 * s, state.Grace, "awaiting restart: 182 s of 182 s"},
		{"beyond the budget", cluster, 183 * s, state.Failed, "no answer for 183 s, budget 182 s"},
		{"sum: the first allowance spent, the next one in use", sum, 8 * s, state.Grace, "awaiting app error recovery: 8 s of 12 s"},
		{"max: equal allowances are named together", equal, 40 * s, state.Grace, "awaiting failover or app error recovery: 40 s of 62 s"},
		{"sum: spent one after the other", sum, 20 * s, state.Grace, "awaiting failover: 20 s of 22 s"},
		{"sum: last one reaches the total", sum, 42 * s, state.Grace, "awaiting restart: 42 s of 42 s"},
		{"sum: beyond", sum, 43 * s, state.Failed, "no answer for 43 s, budget 42 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.b.Judge(tt.silent)
			if j.State != tt.wantState || j.Reason != tt.wantReason {
				t.Errorf("%s %q, want %s %q", j.State, j.Reason, tt.wantState, tt.wantReason)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 95, 0},
		{"one", secs(7), 95, 7 * s},
		{"p95 of 1..20", secs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 95, 19 * s},
		{"p100 is the maximum", secs(3, 1, 2), 100, 3 * s},
		{"p50 of unsorted", secs(30, 10, 20), 50, 20 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKindOfSilence(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	base := response.Status{Time: t0, Agent: response.AgentInfo{ID: "a", StartedAt: t0.Add(-time.Hour)},
		Processes: []response.Process{{Name: "cdp", Generation: 4}}}
	restarted := base
	restarted.Agent.StartedAt = t0.Add(time.Minute)
	newGen := base
	newGen.Processes = []response.Process{{Name: "cdp", Generation: 5}}
	crashed := base
	crashed.Processes = []response.Process{{Name: "cdp", Generation: 4, LastExit: &response.Exit{At: t0.Add(time.Second)}}}
	tests := []struct {
		name     string
		after    response.Status
		failover bool
		want     Kind
	}{
		{"nothing changed: the network", base, false, NetworkInterruption},
		{"agent start time changed: a restart", restarted, false, Restart},
		{"a new generation: app error recovery", newGen, false, AppErrorRecovery},
		{"an exit during the silence: app error recovery", crashed, false, AppErrorRecovery},
		{"the active node changed: failover wins", restarted, true, Failover},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOfSilence(base, tt.after, tt.failover); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0 s", 400 * time.Millisecond: "0.4 s", 2 * s: "2 s", 12400 * time.Millisecond: "12 s", 9500 * time.Millisecond: "9.5 s"} {
		if got := Seconds(d); got != want {
			t.Errorf("Seconds(%s) = %q, want %q", d, got, want)
		}
	}
}
