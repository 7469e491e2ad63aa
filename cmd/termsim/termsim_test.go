package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/fwimage"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

func TestFirmwareSigningTools(t *testing.T) {
	dir := t.TempDir()
	key, pub := filepath.Join(dir, "v.key"), filepath.Join(dir, "v.pub")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fw-keygen", "--key", key, "--pub", pub}, &out); err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(dir, "body.bin")
	if err := os.WriteFile(body, []byte("new firmware"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fw.img")
	if err := run(context.Background(), []string{"fw-sign", "--key", key, "--version", "1.4.2", "--in", body, "--out", img}, &out); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := fwimage.LoadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	h, b, err := fwimage.Verify(pk, raw)
	if err != nil || h.Version.String() != "1.4.2" || string(b) != "new firmware" {
		t.Fatalf("signed image: %v %v %q", h.Version, err, b)
	}
	if err := run(context.Background(), []string{"fw-keygen", "--key", key, "--pub", pub}, &out); err == nil {
		t.Fatal("fw-keygen overwrote an existing key")
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"sign_missing_flags", []string{"fw-sign", "--version", "1.0.0"}, "--in, --key, --out"},
		{"sign_bad_version", []string{"fw-sign", "--key", "k", "--version", "1.0", "--in", "i", "--out", "o"}, "MAJOR.MINOR.PATCH"},
		{"direct_bad_script", []string{"--script", "soak"}, "want demo or load"},
		{"farm_bad_card", []string{"farm", "--cards", "nosuch"}, "no card named"},
		{"farm_bad_entry", []string{"farm", "--cards", "visa-ok:swipe"}, "entry mode"},
		{"farm_no_bundles", []string{"farm", "--keys", "/nonexistent"}, "no key bundles"},
		{"farm_bad_medium", []string{"farm", "--medium", "usb"}, "medium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.name == "farm_bad_medium" {
				args = append(args, "--keys", bundles(t, 1))
			}
			err := run(context.Background(), args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error mentioning %q", args, err, tt.want)
			}
		})
	}
}

func bundles(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		k := keybundle.Keys{TerminalID: fmt.Sprintf("T%07d", i+1), IKID: [8]byte{9, 9, 9, 9, 0, 0, 0, byte(i)},
			InitialKey: bytes.Repeat([]byte{byte(i + 1)}, 16), FingerprintKey: bytes.Repeat([]byte{0xEE}, 32)}
		if err := keybundle.Save(filepath.Join(dir, k.TerminalID+".json"), k); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// lineWriter collects termsim's output lines while it runs.
type lineWriter struct {
	mu    sync.Mutex
	lines []string
	buf   bytes.Buffer
	added chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()))
	w.lines = w.lines[:0]
	for sc.Scan() {
		w.lines = append(w.lines, sc.Text())
	}
	select {
	case w.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *lineWriter) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		got := append([]string(nil), w.lines...)
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-w.added:
		case <-deadline:
			t.Fatalf("termsim printed %d lines, want %d", len(got), n)
		}
	}
}

func TestFarmMode(t *testing.T) {
	keys := bundles(t, 2)
	w := &lineWriter{added: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"farm", "--keys", keys, "--cards", "mc-ok:contactless", "--log-level", "error"}, w)
	}()
	lines := w.waitLines(t, 2)
	for i, l := range lines[:2] {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != fmt.Sprintf("T%07d", i+1) || f[1] != "pty" || !strings.HasPrefix(f[2], "/dev/pts/") {
			t.Fatalf("attachment line %q", l)
		}
	}
	// Play the gateway on terminal 2's pty: one sale, approved.
	port, err := transport.Open(transport.DeviceConfig{Medium: transport.USBSerial, Path: strings.Fields(lines[1])[2]})
	if err != nil {
		t.Fatal(err)
	}
	ep := tlink.New(port, tlink.Config{})
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
	defer scancel()
	var wg sync.WaitGroup
	wg.Go(func() { ep.Run(sctx) })
	defer func() { ep.Close(); wg.Wait() }()
	c, _ := (&tlink.TxnCommand{Ref: "POS-1", Amount: 450, Currency: "392"}).MarshalBinary()
	if err := ep.Send(sctx, tlink.KindSale, c); err != nil {
		t.Fatal(err)
	}
	var res tlink.TxnResult
	for res.Ref == "" {
		m, err := ep.Receive(sctx)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Kind {
		case tlink.KindFinancialRequest:
			var req iso93.FinancialRequest
			if err := iso93.UnpackInto(m.Payload, &req); err != nil {
				t.Fatal(err)
			}
			if req.MaskedPAN != "555555******4444" || req.POSDataCode[6] != 'A' {
				t.Fatalf("1200 masked PAN %s DE 22 %s", req.MaskedPAN, req.POSDataCode)
			}
			resp := req.Response(iso93.ActionApproved)
			resp.ApprovalCode = "777777"
			raw, _ := iso93.Pack(resp, iso93.MTIFinancialResponse)
			if err := ep.Send(sctx, tlink.KindFinancialResponse, raw); err != nil {
				t.Fatal(err)
			}
		case tlink.KindTxnResult:
			if err := res.UnmarshalBinary(m.Payload); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res.Outcome != tlink.OutcomeApproved || res.ApprovalCode != "777777" {
		t.Fatalf("txn-result %+v", res)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines = w.waitLines(t, 3)
	var sum FarmSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line is not the JSON summary: %v", err)
	}
	if sum.Mode != "farm" || sum.Terminals != 2 || sum.Transactions != 1 || sum.ByOutcome["approved"] != 1 || sum.P50ms <= 0 {
		t.Fatalf("summary %+v", sum)
	}
	for _, l := range lines {
		if strings.Contains(l, "5555555555554444") {
			t.Fatal("termsim printed a clear PAN")
		}
	}
}
