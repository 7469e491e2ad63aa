package admin_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/posgate/posgate/gateway/admin"
	"github.com/posgate/posgate/gateway/forward"
	"github.com/posgate/posgate/gateway/internal/gatewaytest"
	gwstandin "github.com/posgate/posgate/gateway/standin"
	"github.com/posgate/posgate/offline/standin"
)

func mustHandle(t *testing.T, f *forward.Forwarder, raw []byte) []byte {
	t.Helper()
	resp, err := f.Handle(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestOfflineAdminRoutes checks the admin routes answer loopback clients
// only, and list no request bytes.
func TestOfflineAdminRoutes(t *testing.T) {
	st := gatewaytest.OpenStore(t, true, standin.Policy{})
	f := &forward.Forwarder{Uplink: gatewaytest.LinkDown, Logger: gatewaytest.Quiet(), StandIn: &gwstandin.Decider{Store: st}}
	if a := gatewaytest.ActionOf(t, mustHandle(t, f, gatewaytest.Sale(t, "000100"))); a != "000" {
		t.Fatalf("offline sale answered %s", a)
	}
	mux := http.NewServeMux()
	admin.Register(mux, st, nil, gatewaytest.Quiet())
	tests := []struct {
		name, method, path, remote string
		want                       int
	}{
		{"status_local", "GET", "/offline/status", "127.0.0.1:5000", http.StatusOK},
		{"rejected_local", "GET", "/offline/rejected", "[::1]:5000", http.StatusOK},
		{"forward_not_enrolled", "POST", "/offline/forward", "127.0.0.1:5000", http.StatusConflict},
		{"status_remote_refused", "GET", "/offline/status", "192.0.2.7:5000", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.RemoteAddr = tt.remote
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%s %s from %s: %d, want %d: %s", tt.method, tt.path, tt.remote, w.Code, tt.want, w.Body)
			}
			if tt.path == "/offline/status" && tt.want == http.StatusOK && !strings.Contains(w.Body.String(), `"pending":{"count":1,"amount":1200}`) {
				t.Fatalf("status body %s", w.Body)
			}
		})
	}
}
