package farm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posgate/posgate/firmware-sim/device"
	"github.com/posgate/posgate/firmware-sim/farm"
	"github.com/posgate/posgate/firmware-sim/jets"
	"github.com/posgate/posgate/p2pe/keybundle"
	"github.com/posgate/posgate/protocol/iso93"
	"github.com/posgate/posgate/terminal/tlink"
	"github.com/posgate/posgate/terminal/transport"
)

func terminals(t *testing.T, n int) []jets.Config {
	t.Helper()
	dir := t.TempDir()
	var out []jets.Config
	for i := range n {
		k := keybundle.Keys{TerminalID: fmt.Sprintf("T%07d", i+1), IKID: [8]byte{1, 2, 3, 4, 5, 6, 7, byte(i)},
			InitialKey: bytes.Repeat([]byte{byte(0x30 + i)}, 16), FingerprintKey: bytes.Repeat([]byte{0x77}, 32)}
		term, err := device.New(k, device.Options{StatePath: filepath.Join(dir, k.TerminalID+".state")})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, jets.Config{Terminal: term})
	}
	return out
}

// drive plays the gateway on rw: one status request and one sale per ref,
// answering each 1200 with approve, and returns the txn-results.
func drive(t *testing.T, rw io.ReadWriteCloser, refs ...string) []tlink.TxnResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep := tlink.New(rw, tlink.Config{})
	var wg sync.WaitGroup
	defer func() { ep.Close(); wg.Wait() }()
	wg.Go(func() { ep.Run(ctx) })
	p, _ := (&tlink.RefOnly{Ref: "st"}).MarshalBinary()
	m, err := ep.Request(ctx, tlink.KindStatusRequest, p)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st tlink.Status
	if err := st.UnmarshalBinary(m.Payload); err != nil || st.State != tlink.StateIdle {
		t.Fatalf("status %+v %v", st, err)
	}
	var out []tlink.TxnResult
	for _, ref := range refs {
		c, _ := (&tlink.TxnCommand{Ref: ref, Amount: 700, Currency: "392"}).MarshalBinary()
		if err := ep.Send(ctx, tlink.KindSale, c); err != nil {
			t.Fatalf("sale: %v", err)
		}
		for done := false; !done; {
			m, err := ep.Receive(ctx)
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			switch m.Kind {
			case tlink.KindFinancialRequest:
				var req iso93.FinancialRequest
				if err := iso93.UnpackInto(m.Payload, &req); err != nil {
					t.Fatal(err)
				}
				resp := req.Response(iso93.ActionApproved)
				resp.ApprovalCode = "OK1234"
				raw, _ := iso93.Pack(resp, iso93.MTIFinancialResponse)
				if err := ep.Send(ctx, tlink.KindFinancialResponse, raw); err != nil {
					t.Fatal(err)
				}
			case tlink.KindTxnResult:
				var r tlink.TxnResult
				if err := r.UnmarshalBinary(m.Payload); err != nil {
					t.Fatal(err)
				}
				out = append(out, r)
				done = true
			}
		}
	}
	return out
}

func TestFarm(t *testing.T) {
	tests := []struct {
		name   string
		medium string
		n      int
	}{
		{"pty", farm.PTY, 2},
		{"tcp_listen", farm.TCPListen, 2},
		{"tcp_dial", farm.TCPDial, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := farm.Config{Terminals: terminals(t, tt.n), Medium: tt.medium}
			var gwLn net.Listener
			switch tt.medium {
			case farm.TCPListen:
				cfg.Address = "127.0.0.1:0"
			case farm.TCPDial:
				var err error
				if gwLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					t.Fatal(err)
				}
				defer gwLn.Close()
				cfg.Address = gwLn.Addr().String()
			}
			f, err := farm.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- f.Run(ctx) }()
			atts := f.Attachments()
			if len(atts) != tt.n {
				t.Fatalf("attachments %+v", atts)
			}
			for i, a := range atts {
				if a.Serial != fmt.Sprintf("T%07d", i+1) || a.Medium != tt.medium {
					t.Fatalf("attachment %+v", a)
				}
				var rw io.ReadWriteCloser
				switch tt.medium {
				case farm.PTY:
					rw, err = transport.Open(transport.DeviceConfig{Medium: transport.USBACM, Path: a.Path})
				case farm.TCPListen:
					rw, err = transport.Open(transport.DeviceConfig{Medium: transport.TCP, Address: a.Addr})
				case farm.TCPDial:
					rw, err = gwLn.Accept()
				}
				if err != nil {
					t.Fatal(err)
				}
				res := drive(t, rw, fmt.Sprint("S", i, "a@visa-ok"), fmt.Sprint("S", i, "b@mc-ok:magstripe"))
				for _, r := range res {
					if r.Outcome != tlink.OutcomeApproved || r.ApprovalCode != "OK1234" {
						t.Fatalf("terminal %s: %+v", a.Serial, r)
					}
				}
			}
			cancel()
			if err := <-ran; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v", err)
			}
			s := f.Summary()
			if s.Terminals != tt.n || s.Transactions != 2*tt.n || s.ByOutcome["approved"] != 2*tt.n || s.ByAction["000"] != 2*tt.n || s.P99ms < s.P50ms {
				t.Fatalf("summary %+v", s)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  farm.Config
	}{
		{"no_terminals", farm.Config{}},
		{"bad_medium", farm.Config{Terminals: []jets.Config{{}}, Medium: "usb"}},
		{"tcp_without_address", farm.Config{Terminals: []jets.Config{{}}, Medium: farm.TCPDial}},
		{"bad_listen_port", farm.Config{Terminals: []jets.Config{{}}, Medium: farm.TCPListen, Address: "127.0.0.1:x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := farm.New(tt.cfg); !errors.Is(err, farm.ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    int
		want float64
	}{
		{"empty", nil, 50, 0},
		{"p50", d, 50, 50},
		{"p95", d, 95, 95},
		{"p99", d, 99, 99},
		{"single", d[:1], 99, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := farm.Percentile(tt.in, tt.p); got != tt.want {
				t.Fatalf("Percentile = %v, want %v", got, tt.want)
			}
		})
	}
}
