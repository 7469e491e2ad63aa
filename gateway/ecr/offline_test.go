package ecr_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/posgate/posgate/internal/poll"
	"github.com/posgate/posgate/offline/offlinetest"

	"github.com/posgate/posgate/gateway/device"
	"github.com/posgate/posgate/gateway/device/devicetest"
	"github.com/posgate/posgate/gateway/ecr"
	"github.com/posgate/posgate/gateway/forward"
	gwstandin "github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/standin"
	"github.com/posgate/posgate/protocol/link"
	"github.com/posgate/posgate/protocol/negfile"
	"github.com/posgate/posgate/terminal/transport"
)

// offlineEnv runs terminal T1 (POS A) through a device manager whose
// Forwarder finds the link down and stands in over a real offline store
// (negative file loaded unless noNegative), and the POS API with the
// gateway's stand-in headroom.
func offlineEnv(t *testing.T, noNegative bool) *env {
	t.Helper()
	st, err := offline.Open(offline.Config{Path: filepath.Join(t.TempDir(), "offline.db"), Sealer: offlinetest.KeySealer()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if !noNegative {
		chunks, err := negfile.Split(negfile.OpSnapshot, 0, 3, []string{"ffeeddccbbaa99887766554433221100"}, nil, negfile.MaxDE72)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if _, err := st.ApplyChunk(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := &env{t: t, terms: map[string]*devicetest.Terminal{"T1": {}}, plugs: map[string]*devicetest.Plug{}, logs: &logBuf{}}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	e.plugs["T1"] = devicetest.NewPlug(t, e.terms["T1"])
	down := devicetest.UplinkFunc(func(context.Context, []byte) ([]byte, error) { return nil, link.ErrLinkDown })
	var srv *ecr.Server
	mgr, err := device.New(device.Config{
		Devices:      []device.DeviceConfig{{ID: "T1", DeviceConfig: transport.DeviceConfig{Medium: transport.TCP, Address: e.plugs["T1"].Addr}}},
		Handler:      &forward.Forwarder{Uplink: down, Logger: log, StandIn: &gwstandin.Decider{Store: st, Logger: log}},
		Logger:       log,
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
		OnResult:     func(r device.TxnResult) { srv.OnResult(r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err = ecr.New(ecr.Config{Clients: []ecr.Client{
		{ID: "POSA", KeySHA256: hash(keyA), Terminals: []string{"T1", "T9"}},
		{ID: "POSB", KeySHA256: hash(keyB), Terminals: []string{"T2"}},
	}}, mgr, ecr.Options{Logger: log, Offline: &gwstandin.Headroom{Store: st}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = mgr.Run(ctx); close(done) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		cancel()
		<-done
	})
	e.url, e.srv, e.mgr = hs.URL, srv, mgr
	poll.Until(t, waitLimit, "T1 up", func() bool { s, _ := mgr.Device("T1"); return s.Connected && s.Health == device.HealthUp })
	return e
}

func (a answer) headroom(t *testing.T) ecr.OfflineHeadroom {
	t.Helper()
	var h ecr.OfflineHeadroom
	if err := json.Unmarshal(a.body, &h); err != nil || a.status != http.StatusOK {
		t.Fatalf("headroom: %d %s", a.status, a.body)
	}
	return h
}

// TestOfflineHeadroomAndStandInBlock: with the link down, the POS reads the
// headroom before the sale, a sale within the floor limit is approved
// offline and says so in its offline block, one over it is declined by
// policy with the reason, and the headroom shows the exposure used and the
// card acceptor learnt from the stand-in.
func TestOfflineHeadroomAndStandInBlock(t *testing.T) {
	e := offlineEnv(t, false)

	before := e.do("GET", "/pos/v1/terminals/T1/offline", keyA, "", "").headroom(t)
	want := ecr.OfflineHeadroom{Terminal: "T1", LinkDown: true, Available: true, Reason: "approved", MaxAmount: standin.DefaultFloorLimit,
		Currency: "392", FloorLimit: standin.DefaultFloorLimit, ExposureRemaining: standin.DefaultTotalExposure,
		CardCount: standin.DefaultCardCount, CardAmount: standin.DefaultCardAmount, Window: "24h0m0s", NegativeFileVersion: 3}
	if before != want {
		t.Fatalf("headroom before any sale\n got %+v\nwant %+v", before, want)
	}

	steps := []struct {
		name, idem, body string
		status           string
		offline          *ecr.OfflineDecision
	}{
		{"within_floor_approved_offline", "k-off-1", `{"terminal_id":"T1","amount":1200,"currency":"392"}`, "approved",
			&ecr.OfflineDecision{Approved: true, Reason: "approved", ActionCode: "000"}},
		{"over_floor_declined_by_policy", "k-off-2", `{"terminal_id":"T1","amount":10001,"currency":"392"}`, "declined",
			&ecr.OfflineDecision{Approved: false, Reason: "floor_limit", ActionCode: standin.ReasonFloorLimit.ActionCode()}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			a := e.do("POST", "/pos/v1/sales", keyA, s.idem, s.body)
			tx := a.tx(t)
			if a.status != http.StatusOK || tx.Status != s.status || tx.Offline == nil {
				t.Fatalf("sale: %d %s", a.status, a.body)
			}
			got := *tx.Offline
			if got.DecidedAt.IsZero() {
				t.Fatalf("offline block without decided_at: %s", a.body)
			}
			got.DecidedAt = time.Time{}
			if got != *s.offline || tx.ActionCode != s.offline.ActionCode {
				t.Fatalf("offline block %+v (action %s), want %+v", got, tx.ActionCode, *s.offline)
			}
			if r := e.do("GET", "/pos/v1/transactions/"+tx.ID, keyA, "", ""); r.tx(t).Offline == nil {
				t.Fatalf("GET lost the offline block: %s", r.body)
			}
		})
	}

	after := e.do("GET", "/pos/v1/terminals/T1/offline", keyA, "", "").headroom(t)
	if after.ExposureRemaining != standin.DefaultTotalExposure-1200 || after.TerminalID != "T0000001" || after.MerchantID != "MERCHANT0000001" ||
		!after.Available || !after.LinkDown {
		t.Fatalf("headroom after an offline approval: %+v", after)
	}

	t.Run("not_assigned_terminal_forbidden", func(t *testing.T) {
		if r := e.do("GET", "/pos/v1/terminals/T1/offline", keyB, "", ""); r.status != http.StatusForbidden || r.code() != "forbidden_terminal" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		if r := e.do("GET", "/pos/v1/terminals/T1/offline", "", "", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
}

// TestOfflineHeadroomUnavailable: without a negative file stand-in
// approves nothing and the headroom says why; a sale is declined with that
// reason in its offline block.
func TestOfflineHeadroomUnavailable(t *testing.T) {
	e := offlineEnv(t, true)
	h := e.do("GET", "/pos/v1/terminals/T1/offline", keyA, "", "").headroom(t)
	if h.Available || h.Reason != "no_negative_file" || h.MaxAmount != 0 || h.NegativeFileVersion != 0 {
		t.Fatalf("headroom without a negative file: %+v", h)
	}
	a := e.do("POST", "/pos/v1/sales", keyA, "k-nf", `{"terminal_id":"T1","amount":100,"currency":"392"}`)
	if tx := a.tx(t); tx.Status != "declined" || tx.Offline == nil || tx.Offline.Reason != "no_negative_file" || tx.Offline.Approved {
		t.Fatalf("sale without a negative file: %d %s", a.status, a.body)
	}
}

// TestOfflineRouteWithoutStore: a server built without Options.Offline
// answers 503, and an online sale carries no offline block.
func TestOfflineRouteWithoutStore(t *testing.T) {
	e := newEnv(t, 30*time.Second, map[string]*devicetest.Terminal{})
	if r := e.do("GET", "/pos/v1/terminals/T1/offline", keyA, "", ""); r.status != http.StatusServiceUnavailable || r.code() != "offline_unavailable" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	a := e.do("POST", "/pos/v1/sales", keyA, "k-on", saleT1)
	if tx := a.tx(t); tx.Status != "approved" || tx.Offline != nil {
		t.Fatalf("online sale: %s", a.body)
	}
}
