package iso93_test

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/iso8583")

const goldenDir = "../../testdata/iso8583"

// TestGolden packs fixed messages and compares them with the hex samples in
// testdata/iso8583 (rewritten with -update), then unpacks each sample back
// into its type.
func TestGolden(t *testing.T) {
	signOn, err := iso93.NetworkCodec{Now: func() time.Time { return testNow }}.SignOn("gw-0001", 42)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file string
		mti  string
		v    any
		zero any
		raw  []byte // when set, the bytes to compare instead of Pack(v)
	}{
		{"sale_1200.hex", iso93.MTIFinancialRequest, sale1200(), new(iso93.FinancialRequest), nil},
		{"sale_1210.hex", iso93.MTIFinancialResponse, sale1210(), new(iso93.FinancialResponse), nil},
		{"signon_1804.hex", iso93.MTINetworkManagement, &iso93.NetworkManagement{Trace: iso93.Trace{
			TransmissionTime: "0304050607", STAN: "000042", FunctionCode: iso93.FunctionSignOn, GatewayID: "gw-0001",
		}}, new(iso93.NetworkManagement), signOn},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".hex"), func(t *testing.T) {
			raw, err := iso93.Pack(tt.v, tt.mti)
			if err != nil {
				t.Fatal(err)
			}
			if tt.raw != nil && string(tt.raw) != string(raw) {
				t.Fatalf("NetworkCodec.SignOn differs from the typed 1804")
			}
			path := filepath.Join(goldenDir, tt.file)
			got := hex.EncodeToString(raw) + "\n"
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if got != string(want) {
				t.Fatalf("packed %s differs from %s:\n got %s\nwant %s", tt.mti, path, got, want)
			}
			back, err := hex.DecodeString(strings.TrimSpace(string(want)))
			if err != nil {
				t.Fatal(err)
			}
			if err := iso93.UnpackInto(back, tt.zero); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.zero, tt.v) {
				t.Fatalf("golden %s unpacks to %+v, want %+v", tt.file, tt.zero, tt.v)
			}
		})
	}
}
