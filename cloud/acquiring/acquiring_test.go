package acquiring_test

import (
	"context"
	"errors"
	"testing"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/store"
	"github.com/posgate/posgate/cloud/store/storetest"
)

func TestRegister(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := &acquiring.Acquirer{Store: st}
		if err := a.RegisterGateway(ctx, "GW-1"); err != nil {
			t.Fatal(err)
		}
		if err := a.CreateMerchant(ctx, "HQ", "Head office", ""); err != nil {
			t.Fatal(err)
		}
		if err := a.CreateMerchant(ctx, "SHOP1", "Shop", "HQ"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name                          string
			term, merchant, gw, mcc, curr string
			want                          error
		}{
			{"valid", "TERM0001", "SHOP1", "GW-1", "5411", "392", nil},
			{"duplicate", "TERM0001", "SHOP1", "GW-1", "5411", "392", store.ErrDuplicate},
			{"short_id", "TERM01", "SHOP1", "GW-1", "5411", "392", acquiring.ErrInvalid},
			{"bad_mcc", "TERM0002", "SHOP1", "GW-1", "54a1", "392", acquiring.ErrInvalid},
			{"bad_currency", "TERM0002", "SHOP1", "GW-1", "5411", "JPY", acquiring.ErrInvalid},
			{"unknown_merchant", "TERM0002", "NOPE", "GW-1", "5411", "392", store.ErrReference},
			{"unknown_gateway", "TERM0002", "SHOP1", "GW-9", "5411", "840", store.ErrReference},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := a.RegisterTerminal(ctx, tt.term, tt.merchant, tt.gw, tt.mcc, tt.curr)
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("RegisterTerminal = %v, want %v", err, tt.want)
				}
			})
		}
		if err := a.CreateMerchant(ctx, "SHOP2", "Shop", "NOHQ"); !errors.Is(err, store.ErrReference) {
			t.Fatalf("merchant with unknown head office = %v, want ErrReference", err)
		}
	})
}
