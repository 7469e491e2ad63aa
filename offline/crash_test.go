package offline_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/posgate/posgate/offline/standin"
)

// crashBin is the crash-test child, built once by TestMain.
var crashBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "posgate-offline-crashtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crashBin = filepath.Join(dir, "crashtest")
	out, err := exec.Command("go", "build", "-race", "-o", crashBin, "github.com/posgate/posgate/offline/internal/crashtest").CombinedOutput()
	if err != nil {
		// Without -race (no cgo): build the plain binary.
		out, err = exec.Command("go", "build", "-o", crashBin, "github.com/posgate/posgate/offline/internal/crashtest").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build crashtest: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// crashPolicy is the child's policy (internal/crashtest.Policy): nothing
// the test does reaches a limit.
func crashPolicy() standin.Policy {
	return standin.Policy{TotalExposure: 1 << 60, MaxStaleness: 1 << 62,
		Default: standin.Rules{FloorLimit: 1 << 40, CardCount: 1 << 30, CardAmount: 1 << 60, MerchantExposure: 1 << 60}}
}

type told struct {
	id   uint64
	idem string
}

// runChild starts the child on path; it reads its output until killAfter
// approvals were printed (0: until it exits), SIGKILLs it there, and
// returns every approval the child printed and its other lines.
func runChild(t *testing.T, path, run string, killAfter int, extra ...string) ([]told, []string, error) {
	t.Helper()
	args := append([]string{"-db", path, "-key", hex.EncodeToString(testKey), "-run", run}, extra...)
	cmd := exec.Command(crashBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var oks []told
	var other []string
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "ok" {
			id, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("child printed a bad id line %q", line)
			}
			oks = append(oks, told{id, f[2]})
		} else {
			other = append(other, line)
		}
		if killAfter > 0 && len(oks) >= killAfter && !killed {
			// SIGKILL: no deferred Close, no flush; whatever is still in
			// the pipe was printed before the kill and is read below.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if !killed && err != nil && stderr.Len() > 0 {
		t.Logf("child stderr: %s", stderr.String())
	}
	return oks, other, err
}

// TestCrashNeverLosesOrDoublesApprovals is the durability proof of
// invariant 3 at the gateway: a child approves as fast as it can and
// prints each approval after Approve returned; it is SIGKILLed at a random
// point, restarted, several rounds. Every printed approval must be in the
// store exactly once, and the queue must hand each out once, in order.
func TestCrashNeverLosesOrDoublesApprovals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	const rounds = 6
	all := map[string]uint64{}
	for r := range rounds {
		killAfter := 50 + rng.IntN(400)
		oks, other, err := runChild(t, path, fmt.Sprintf("r%d", r), killAfter)
		if err == nil {
			t.Fatalf("round %d: the child exited on its own; it should have been killed", r)
		}
		if len(oks) < killAfter || len(other) > 0 {
			t.Fatalf("round %d: %d approvals printed (kill after %d), other output %q", r, len(oks), killAfter, other)
		}
		for _, o := range oks {
			if prev, dup := all[o.idem]; dup {
				t.Fatalf("idempotency key approved twice (ids %d and %d)", prev, o.id)
			}
			all[o.idem] = o.id
		}
	}

	st, _ := open(t, opts{path: path, policy: crashPolicy()})
	stats, err := st.Queue().Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending.Count < int64(len(all)) {
		t.Fatalf("store holds %d pending approvals, the children reported %d", stats.Pending.Count, len(all))
	}
	q := st.Queue()
	seen := map[uint64]bool{}
	var last uint64
	for {
		recs, err := q.Next(100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if seen[rec.ID] || rec.ID <= last {
				t.Fatalf("queue handed out record %d again or out of order (after %d)", rec.ID, last)
			}
			seen[rec.ID], last = true, rec.ID
			if id, ok := all[rec.IdempotencyKey]; ok && id != rec.ID {
				t.Fatalf("idempotency key stored under id %d, the child was told %d", rec.ID, id)
			}
			if err := q.MarkSent(rec.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := q.MarkAnswered(rec.ID, "000"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for idem, id := range all {
		if !seen[id] {
			t.Fatalf("approval %d (%s) was told to the terminal but is not in the store", id, idem)
		}
	}
	if int64(len(seen)) != stats.Pending.Count {
		t.Fatalf("queue handed out %d records, stats counted %d", len(seen), stats.Pending.Count)
	}
	t.Logf("%d rounds, %d approvals told, %d stored (committed but not yet printed when killed: %d)",
		rounds, len(all), len(seen), len(seen)-len(all))
}

// TestFullDisk runs the child under a file-size limit: the store hits
// EFBIG the way it would hit a full disk. The first failed Approve must be
// an ErrStorage (so the gateway declines instead of approving), and after
// the limit is lifted every approval the child reported is still there and
// the store keeps working.
func TestFullDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full.db")
	// Create the file and its negative file without a limit first.
	if _, _, err := runChild(t, path, "warm", 0, "-n", "1"); err != nil {
		t.Fatalf("warm-up child: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	oks, other, err := runChild(t, path, "full", 0, "-fsize", strconv.FormatInt(info.Size()+256<<10, 10), "-workers", "4")
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("child under a file-size limit ended with %v (output %q); want exit 3 after a storage error", err, other)
	}
	if len(other) != 1 || other[0] != "err storage=true" {
		t.Fatalf("child output %q, want one \"err storage=true\"", other)
	}
	if len(oks) == 0 {
		t.Fatal("the child approved nothing before the disk filled up")
	}
	st, _ := open(t, opts{path: path, policy: crashPolicy()})
	q := st.Queue()
	for _, o := range oks {
		r, err := q.Get(o.id)
		if err != nil || r.IdempotencyKey != o.idem {
			t.Fatalf("approval %d told before the disk filled is gone: %v", o.id, err)
		}
	}
	d, err := st.Approve(sale("after-full", fp(1), 100))
	if err != nil || !d.Approved {
		t.Fatalf("Approve after the limit is lifted = %+v, %v", d, err)
	}
	t.Logf("%d approvals before the file-size limit was hit", len(oks))
}
