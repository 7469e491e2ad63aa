package ledger

import (
	"context"

	"github.com/posgate/posgate/cloud/store"
)

// Tx is what the ledger needs of a store transaction to move money: lock
// and update accounts, write transfers with their postings, and keep
// holds. *store.Tx implements it; the functions that take a Tx write
// nothing outside it, so the caller's commit or rollback decides for all
// of them.
type Tx interface {
	AccountReader
	// Dialect picks the clearing-shard strategy (MerchantClearing).
	Dialect() store.Dialect
	LockAccount(ctx context.Context, id int64) (store.Account, error)
	LockFreeAccountByRef(ctx context.Context, refs []string) (int64, error)
	EnsureAccountByRef(ctx context.Context, a store.Account) (int64, error)
	EnsureAccountsByRef(ctx context.Context, as []store.Account) error
	SetAccountsAmounts(ctx context.Context, as ...store.AccountAmounts) error
	InsertTransfer(ctx context.Context, t store.Transfer) (int64, error)
	Transfer(ctx context.Context, id int64) (store.Transfer, error)
	InsertHold(ctx context.Context, h store.Hold) (int64, error)
	Hold(ctx context.Context, id int64) (store.Hold, error)
	SetHoldStatus(ctx context.Context, id int64, s store.HoldStatus) error
}

// AccountReader is what the ledger's read-only functions
// (MerchantClearingAccounts, MerchantClearingBalance) need; a read-only
// *store.Tx from store.View implements it.
type AccountReader interface {
	AccountsByRef(ctx context.Context, refs []string) ([]store.Account, error)
}

// The store's transaction is the ledger's.
var (
	_ Tx            = (*store.Tx)(nil)
	_ AccountReader = (*store.Tx)(nil)
)
