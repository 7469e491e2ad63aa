package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/gateway/admin"
	"github.com/posgate/posgate/gateway/adminapi"
	"github.com/posgate/posgate/gateway/advice"
	"github.com/posgate/posgate/offline"
	"github.com/posgate/posgate/offline/offlinetest"
	"github.com/posgate/posgate/protocol/negfile"
)

var approvedAt = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

// offlineGateway serves the gateway's real offline admin routes over a
// real offline store holding three offline approvals (one of them
// rejected by the center) and negative file version 7; with enrolled, a
// forward pass can be requested.
func offlineGateway(t *testing.T, enrolled bool) *httptest.Server {
	t.Helper()
	st := offlinetest.Open(t, offline.Config{Now: func() time.Time { return approvedAt }})
	chunks, err := negfile.Split(negfile.OpSnapshot, 0, 7, []string{"ffeeddccbbaa99887766554433221100"}, nil, negfile.MaxDE72)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if _, err := st.ApplyChunk(c); err != nil {
			t.Fatal(err)
		}
	}
	var ids []uint64
	for i, amount := range []int64{1200, 3400, 500} {
		d, err := st.Approve(offline.Sale{IdempotencyKey: fmt.Sprintf("T0000001-%06d", i+1), TerminalID: "T0000001", MerchantID: "M0000001",
			Brand: "visa", Fingerprint: fmt.Sprintf("%032x", i+1), MaskedPAN: "411111******1111", Amount: amount, Currency: "392",
			Message: []byte("1200 request bytes")})
		if err != nil || !d.Approved {
			t.Fatalf("approve %d: %+v %v", i, d, err)
		}
		ids = append(ids, d.RecordID)
	}
	if err := st.Queue().MarkSent(ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Queue().MarkAnswered(ids[1], "200"); err != nil {
		t.Fatal(err)
	}
	var adv admin.Trigger // nil: not enrolled
	if enrolled {
		adv = &advice.Forwarder{}
	}
	mux := http.NewServeMux()
	admin.Register(mux, st, adv, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestOfflineCommands(t *testing.T) {
	srv := offlineGateway(t, true)
	notEnrolled := offlineGateway(t, false)
	e := env{http: srv.Client()}
	tests := []struct {
		name    string
		args    []string
		want    []string // lines the output must hold
		wantErr error
		errText string
	}{
		{"status_text", []string{"offline", "status", "--gateway", srv.URL}, []string{
			"STATE     COUNT  AMOUNT",
			"pending   2      1700",
			"sent      0      0",
			"rejected  1      3400",
			"exposure: 1700",
			"oldest queued: 2026-11-24T09:30:00Z",
			"negative file: version 7, synced at 2026-11-24T09:30:00Z",
		}, nil, ""},
		{"rejected_text", []string{"offline", "rejected", "--gateway", srv.URL}, []string{
			"ID  APPROVED              BY        TERMINAL  MERCHANT  CARD              AMOUNT  CURRENCY  APPROVAL",
			"stand-in  T0000001  M0000001  411111******1111  3400    392",
		}, nil, ""},
		{"forward_text", []string{"offline", "forward", "--gateway", srv.URL}, []string{"forward pass requested"}, nil, ""},
		{"forward_not_enrolled", []string{"offline", "forward", "--gateway", notEnrolled.URL}, nil, nil, "409 Conflict: the gateway is not enrolled"},
		{"no_subcommand", []string{"offline"}, nil, errUsage, ""},
		{"unknown_subcommand", []string{"offline", "purge"}, nil, errUsage, ""},
		{"bad_gateway_url", []string{"offline", "status", "--gateway", "127.0.0.1:8081"}, nil, errUsage, ""},
		{"extra_argument", []string{"offline", "status", "now"}, nil, errUsage, ""},
		{"gateway_down", []string{"offline", "status", "--gateway", "http://127.0.0.1:1"}, nil, nil, "GET /offline/status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut, e)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v, want one containing %q", err, tt.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestOfflineCommandsJSON: --json prints the gateway's documents, which
// decode to what the store holds.
func TestOfflineCommandsJSON(t *testing.T) {
	srv := offlineGateway(t, true)
	e := env{http: srv.Client()}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"offline", "status", "--json", "--gateway", srv.URL}, &out, &out, e); err != nil {
		t.Fatal(err)
	}
	var st adminapi.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if st.Queue["pending"] != (adminapi.Total{Count: 2, Amount: 1700}) || st.Queue["rejected"].Count != 1 ||
		st.Exposure != 1700 || !st.Negative.Loaded || st.Negative.Version != 7 || !st.Oldest.Equal(approvedAt) {
		t.Fatalf("status --json: %+v", st)
	}
	out.Reset()
	if err := run(context.Background(), []string{"offline", "rejected", "--json", "--gateway", srv.URL}, &out, &out, e); err != nil {
		t.Fatal(err)
	}
	var rj adminapi.Rejected
	if err := json.Unmarshal(out.Bytes(), &rj); err != nil {
		t.Fatalf("rejected --json: %v\n%s", err, out.String())
	}
	if len(rj.Rejected) != 1 || rj.Rejected[0].Amount != 3400 || rj.Rejected[0].Action != "200" || rj.Rejected[0].State != "rejected" {
		t.Fatalf("rejected --json: %+v", rj)
	}
}
