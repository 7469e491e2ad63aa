package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The gateway scale benchmark ("Terminals at the edge"): how many simulated
// terminals one gateway serves at once with the gateway's added p99 under
// 50 ms. It runs the real binaries (cardcenter, posgate, termsim) on this
// machine, so the center, the gateway and the terminals share its cores.
//
// It runs only when POSGATE_SCALE is set (make bench-scale), never in
// make test. Knobs:
//
//	POSGATE_SCALE_TERMINALS  comma-separated terminal counts, run in turn
//	                         against one center and gateway (default
//	                         100,250,500,1000)
//	POSGATE_SCALE_SALES      sales per terminal in each step (default 10)
//	POSGATE_SCALE_OUT        file to write the results table to (markdown)
//
// It fails when a sale fails outright, when the gateway recorded no
// samples, or when the ledger does not balance afterwards; it never asserts
// a latency (tests do not assert timings): the table is the result.

// scaleTarget is the bound on the gateway's added p99.
const scaleTarget = 50 * time.Millisecond

// scaleSummary is termsim's JSON summary line.
type scaleSummary struct {
	Terminals  int            `json:"terminals"`
	Sales      int            `json:"sales"`
	ByOutcome  map[string]int `json:"by_outcome"`
	Errors     int            `json:"errors"`
	Unexpected int            `json:"unexpected"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"per_second"`
	P50ms      float64        `json:"p50_ms"`
	P95ms      float64        `json:"p95_ms"`
	P99ms      float64        `json:"p99_ms"`
}

// scaleRow is one step's result.
type scaleRow struct {
	n                    int
	sum                  scaleSummary
	gwN                  uint64
	gwP50, gwP99         float64 // posgate_gateway_seconds{mti="1200"}, ms
	gwOver               bool    // p99 fell in the +Inf bucket
	reqP50, reqP99       float64 // posgate_request_seconds{mti="1200"}, ms
	centerP50, centerP99 float64 // cardcenter_request_seconds{mti="1200"}, ms
	gwCPU, centerCPU     float64 // process CPU seconds in the step
	termsimCPU           float64
}

func TestGatewayScale(t *testing.T) {
	if os.Getenv("POSGATE_SCALE") == "" {
		t.Skip("the gateway scale benchmark runs only with POSGATE_SCALE=1 (make bench-scale)")
	}
	steps := []int{100, 250, 500, 1000}
	if v := os.Getenv("POSGATE_SCALE_TERMINALS"); v != "" {
		steps = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 9999 {
				t.Fatalf("POSGATE_SCALE_TERMINALS %q: want comma-separated counts from 1 to 9999", v)
			}
			steps = append(steps, n)
		}
	}
	sales := 10
	if v := os.Getenv("POSGATE_SCALE_SALES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("POSGATE_SCALE_SALES %q: want a positive count", v)
		}
		sales = n
	}
	maxN := slices.Max(steps)

	dir := t.TempDir()
	linkAddr, centerHTTP := freeAddr(t, "udp"), freeAddr(t, "tcp")
	termAddr, gwHTTP := freeAddr(t, "tcp"), freeAddr(t, "tcp")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("center.yaml", fmt.Sprintf("data_dir: ./center\nlink:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, centerHTTP))
	write("gateway.yaml", fmt.Sprintf("data_dir: ./gateway\ncenter:\n  addrs: [%s]\nterminals:\n  listen: %s\nhttp:\n  listen: %s\n", linkAddr, termAddr, gwHTTP))

	setup := time.Now()
	run(t, dir, "cardcenter", "seed-demo", "--config", "center.yaml", "--terminals", strconv.Itoa(maxN))
	run(t, dir, "hsmctl", "inject", "--softhsm-dir", "center/hsm", "--token", "cardcenter", "--bdk", "bdk",
		"--count", strconv.Itoa(maxN), "--first", "1", "--bdk-id", "00000001",
		"--fingerprint-components", "center/ceremony/fingerprint-components.json", "--out-dir", "termsim", "--format", "json")
	csr := strings.TrimSpace(run(t, dir, "posgate", "csr", "--config", "gateway.yaml"))
	run(t, dir, "cardcenter", "enrol", "--config", "center.yaml", "--gateway-id", "GW000001", "--csr", csr,
		"--out", "gateway/link/gateway.crt", "--ca-out", "gateway/link/ca.crt")
	t.Logf("seeded and injected %d terminals in %v", maxN, time.Since(setup).Round(time.Millisecond))

	center := start(t, dir, "cardcenter", "--config", "center.yaml")
	gw := start(t, dir, "posgate", "--config", "gateway.yaml")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cardcenter:\n%s\nposgate:\n%s", lastLines(center.logs.String(), 40), lastLines(gw.logs.String(), 40))
		}
	})
	waitMetric(t, gwHTTP, "posgate_link_up 1")
	waitMetric(t, centerHTTP, "cardcenter_link_gateways 1")

	loadBefore, _ := os.ReadFile("/proc/loadavg")
	var rows []scaleRow
	for _, n := range steps {
		gwBefore, cBefore := scrape(t, gwHTTP), scrape(t, centerHTTP)
		cmd := exec.Command(filepath.Join(binaries(t), "termsim"), "--gateway", termAddr, "--keys", "termsim",
			"--terminals", strconv.Itoa(n), "--script", "load", "--sales", strconv.Itoa(sales),
			// One yen a sale: the deck's prepaid card is not drained over
			// thousands of sales, so every sale is approved.
			"--amount", "1", "--timeout", "60s")
		cmd.Dir = dir
		var stderr syncBuffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("termsim with %d terminals: %v\n%s\n%s", n, err, lastLines(string(out), 5), lastLines(stderr.String(), 20))
		}
		gwAfter, cAfter := scrape(t, gwHTTP), scrape(t, centerHTTP)
		var sum scaleSummary
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
			t.Fatalf("termsim's last line is not its JSON summary: %v", err)
		}
		if sum.Errors != 0 || sum.Sales != n*sales {
			t.Errorf("%d terminals: termsim summary %+v, want %d sales and no errors", n, sum, n*sales)
		}
		r := scaleRow{n: n, sum: sum,
			gwCPU:      gwAfter.value("process_cpu_seconds_total") - gwBefore.value("process_cpu_seconds_total"),
			centerCPU:  cAfter.value("process_cpu_seconds_total") - cBefore.value("process_cpu_seconds_total"),
			termsimCPU: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(),
		}
		gwh := gwAfter.histogram("posgate_gateway_seconds", "1200").minus(gwBefore.histogram("posgate_gateway_seconds", "1200"))
		r.gwN = gwh.count()
		if r.gwN != uint64(sum.Sales) {
			t.Errorf("%d terminals: posgate_gateway_seconds counted %d 1200s, termsim sent %d", n, r.gwN, sum.Sales)
		}
		r.gwP50, _ = gwh.quantile(.50)
		r.gwP99, r.gwOver = gwh.quantile(.99)
		reqh := gwAfter.histogram("posgate_request_seconds", "1200").minus(gwBefore.histogram("posgate_request_seconds", "1200"))
		r.reqP50, _ = reqh.quantile(.50)
		r.reqP99, _ = reqh.quantile(.99)
		ch := cAfter.histogram("cardcenter_request_seconds", "1200").minus(cBefore.histogram("cardcenter_request_seconds", "1200"))
		r.centerP50, _ = ch.quantile(.50)
		r.centerP99, _ = ch.quantile(.99)
		rows = append(rows, r)
		t.Logf("%d terminals: %s", n, lines[len(lines)-1])
	}

	loadAfter, _ := os.ReadFile("/proc/loadavg")
	table := fmt.Sprintf("sales per terminal: %d; /proc/loadavg before the steps: %s, after: %s\n\n%s",
		sales, strings.TrimSpace(string(loadBefore)), strings.TrimSpace(string(loadAfter)), scaleTable(rows))
	t.Logf("results:\n%s", table)
	if p := os.Getenv("POSGATE_SCALE_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Errorf("write %s: %v", p, err)
		}
	}

	gw.stop(t)
	center.stop(t)
	if r := run(t, dir, "cardcenter", "ledger", "check", "--config", "center.yaml"); !strings.Contains(r, "OK") {
		t.Fatalf("ledger check after the scale run: %s", r)
	}
	assertNoPAN(t, center.logs.String()+gw.logs.String())
}

// scaleTable renders the rows as the markdown table docs/benchmarks.md
// quotes, followed by the largest count meeting the target.
func scaleTable(rows []scaleRow) string {
	var b strings.Builder
	b.WriteString("| terminals | sales | sales/s | termsim p50 / p95 / p99 ms | gateway-added p50 / p99 ms | gateway request p50 / p99 ms | center p50 / p99 ms | CPU s: gateway / center / termsim |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	best := 0
	for _, r := range rows {
		p99 := fmt.Sprintf("%.2f", r.gwP99)
		if r.gwOver {
			p99 = "> " + p99
		}
		fmt.Fprintf(&b, "| %d | %d | %.0f | %.1f / %.1f / %.1f | %.2f / %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f / %.1f |\n",
			r.n, r.sum.Sales, r.sum.PerSecond, r.sum.P50ms, r.sum.P95ms, r.sum.P99ms, r.gwP50, p99,
			r.reqP50, r.reqP99, r.centerP50, r.centerP99, r.gwCPU, r.centerCPU, r.termsimCPU)
		if !r.gwOver && r.gwP99 < float64(scaleTarget.Milliseconds()) && r.sum.Errors == 0 && r.n > best {
			best = r.n
		}
	}
	fmt.Fprintf(&b, "\nlargest terminal count with the gateway-added p99 under %v: %d\n", scaleTarget, best)
	return b.String()
}

// metricsText is one scrape of a /metrics page (Prometheus text format).
type metricsText []string

func scrape(t *testing.T, addr string) metricsText {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var lines metricsText
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s/metrics: %v", addr, err)
	}
	return lines
}

// value returns the unlabelled sample name, 0 when absent.
func (m metricsText) value(name string) float64 {
	for _, l := range m {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

var (
	bucketLine = regexp.MustCompile(`^(\w+)_bucket\{(.*)\} (\S+)$`)
	labelPair  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// bucket is one cumulative histogram bucket: samples at most le seconds.
type bucket struct {
	le    float64
	count float64
}

// hist is a histogram's cumulative buckets in ascending le, +Inf last.
type hist []bucket

// histogram returns the buckets of name{mti=mti}.
func (m metricsText) histogram(name, mti string) hist {
	var h hist
	for _, l := range m {
		g := bucketLine.FindStringSubmatch(l)
		if g == nil || g[1] != name {
			continue
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(g[2], -1) {
			labels[p[1]] = p[2]
		}
		if labels["mti"] != mti {
			continue
		}
		le, err1 := strconv.ParseFloat(labels["le"], 64) // "+Inf" parses as +Inf
		c, err2 := strconv.ParseFloat(g[3], 64)
		if err1 == nil && err2 == nil {
			h = append(h, bucket{le, c})
		}
	}
	slices.SortFunc(h, func(a, b bucket) int {
		switch {
		case a.le < b.le:
			return -1
		case a.le > b.le:
			return 1
		}
		return 0
	})
	return h
}

// minus returns h less an earlier scrape of the same histogram.
func (h hist) minus(before hist) hist {
	out := slices.Clone(h)
	for i := range out {
		for _, b := range before {
			if b.le == out[i].le {
				out[i].count -= b.count
			}
		}
	}
	return out
}

func (h hist) count() uint64 {
	if len(h) == 0 {
		return 0
	}
	return uint64(h[len(h)-1].count)
}

// quantile estimates the q-quantile in milliseconds as Prometheus's
// histogram_quantile does: linear within the bucket it falls in. over is
// true when it falls in the +Inf bucket, where the largest finite bound is
// returned.
func (h hist) quantile(q float64) (ms float64, over bool) {
	if len(h) == 0 || h.count() == 0 {
		return 0, false
	}
	rank := q * h[len(h)-1].count
	lower, below := 0.0, 0.0
	for _, b := range h {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lower * 1000, true
			}
			if b.count == below {
				return b.le * 1000, false
			}
			return (lower + (b.le-lower)*(rank-below)/(b.count-below)) * 1000, false
		}
		lower, below = b.le, b.count
	}
	return lower * 1000, true
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestHistogramQuantile(t *testing.T) {
	page := metricsText{
		`x_bucket{mti="1200",le="0.001"} 50`,
		`x_bucket{mti="1200",le="0.01"} 90`,
		`x_bucket{mti="1200",le="0.1"} 100`,
		`x_bucket{mti="1200",le="+Inf"} 100`,
		`x_bucket{mti="1100",le="+Inf"} 7`,
		`y_bucket{mti="1200",le="+Inf"} 9`,
		`process_cpu_seconds_total 1.5`,
	}
	before := metricsText{
		`x_bucket{mti="1200",le="0.001"} 10`,
		`x_bucket{mti="1200",le="0.01"} 10`,
		`x_bucket{mti="1200",le="0.1"} 10`,
		`x_bucket{mti="1200",le="+Inf"} 10`,
	}
	over := metricsText{`x_bucket{mti="1200",le="0.01"} 1`, `x_bucket{mti="1200",le="+Inf"} 10`}
	tests := []struct {
		name     string
		h        hist
		q        float64
		wantMS   float64
		wantOver bool
	}{
		{"median_at_first_bound", page.histogram("x", "1200"), .5, 1, false},
		{"p95_interpolated", page.histogram("x", "1200"), .95, 55, false},
		{"p99_interpolated", page.histogram("x", "1200"), .99, 91, false},
		{"delta_of_two_scrapes", page.histogram("x", "1200").minus(before.histogram("x", "1200")), .5, 2.125, false},
		{"in_the_inf_bucket", over.histogram("x", "1200"), .99, 10, true},
		{"empty", page.histogram("x", "9999"), .99, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, o := tt.h.quantile(tt.q)
			if math.Abs(ms-tt.wantMS) > 1e-9 || o != tt.wantOver {
				t.Fatalf("quantile(%g) = %g ms (over %v), want %g ms (over %v)", tt.q, ms, o, tt.wantMS, tt.wantOver)
			}
		})
	}
	if n := page.histogram("x", "1100").count(); n != 7 {
		t.Errorf("count of x{mti=1100} = %d, want 7", n)
	}
	if v := page.value("process_cpu_seconds_total"); v != 1.5 {
		t.Errorf("process_cpu_seconds_total = %g, want 1.5", v)
	}
}
