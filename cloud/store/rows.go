package store

import (
	"time"

	"github.com/posgate/posgate/protocol/iso93"
)

// Gateway is a posgate appliance allowed to connect to the center.
type Gateway struct {
	ID        string
	CreatedAt time.Time
}

// Merchant is a card acceptor. HeadOfficeID is empty for a merchant without
// a head office.
type Merchant struct {
	ID           string
	Name         string
	HeadOfficeID string
	CreatedAt    time.Time
}

// Terminal is a payment terminal (ISO 8583 DE 41, ans8) at a merchant,
// reachable only through one gateway. Currency is ISO 4217 numeric ("392").
type Terminal struct {
	ID         string
	MerchantID string
	GatewayID  string
	MCC        string
	Currency   string
	CreatedAt  time.Time
}

// ProductKind is the kind of a card product and of the accounts behind it.
type ProductKind string

// Product kinds.
const (
	KindCredit  ProductKind = "credit"
	KindDebit   ProductKind = "debit"
	KindPrepaid ProductKind = "prepaid"
	KindHouse   ProductKind = "house"
)

// Valid reports whether k is one of the product kinds.
func (k ProductKind) Valid() bool {
	switch k {
	case KindCredit, KindDebit, KindPrepaid, KindHouse:
		return true
	}
	return false
}

// Product is a card product: what kind of account its cards draw on, in
// which currency, which PANs it issues (BINLow..BINHigh, equal-length digit
// prefixes, PANs of PANLength digits) and its default limits. A house card
// is accepted only at AllowedMerchants.
type Product struct {
	ID               int64
	Name             string
	Kind             ProductKind
	Currency         string
	BINLow, BINHigh  string
	PANLength        int
	CreditLine       int64
	Overdraft        int64
	AllowedMerchants []string
	CreatedAt        time.Time
}

// Cardholder is the person or company an account belongs to.
type Cardholder struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// AccountKind is the kind of a ledger account.
type AccountKind string

// Account kinds. Cardholder accounts use the product kinds; the others are
// the center's own accounts.
const (
	AccountCredit           AccountKind = "credit"
	AccountDebit            AccountKind = "debit"
	AccountPrepaid          AccountKind = "prepaid"
	AccountHouse            AccountKind = "house"
	AccountMerchantClearing AccountKind = "merchant_clearing"
	AccountIssuerFunding    AccountKind = "issuer_funding"
	AccountIssuerReceivable AccountKind = "issuer_receivable"
)

// Cardholder reports whether accounts of kind k belong to cardholders and
// are therefore limited (their available amount may not go below zero).
func (k AccountKind) Cardholder() bool {
	switch k {
	case AccountCredit, AccountDebit, AccountPrepaid, AccountHouse:
		return true
	}
	return false
}

// Account is a ledger account. Balance is the sum of its postings (signed
// minor units of Currency); Held is the sum of its open holds. Ref is a
// unique name for the center's own accounts ("issuer_funding:392") and
// empty for cardholder accounts. Zero IDs mean "none".
type Account struct {
	ID           int64
	Kind         AccountKind
	Currency     string
	Ref          string
	CardholderID int64
	ProductID    int64
	MerchantID   string
	Balance      int64
	Held         int64
	CreditLine   int64
	Overdraft    int64
	CreatedAt    time.Time
}

// CardStatus is the lifecycle state of a card.
type CardStatus string

// Card statuses.
const (
	CardActive    CardStatus = "active"
	CardSuspended CardStatus = "suspended"
	CardLost      CardStatus = "lost"
	CardStolen    CardStatus = "stolen"
	CardClosed    CardStatus = "closed"
)

// Valid reports whether s is one of the card statuses.
func (s CardStatus) Valid() bool {
	switch s {
	case CardActive, CardSuspended, CardLost, CardStolen, CardClosed:
		return true
	}
	return false
}

// Card is an issued card. The clear PAN is never stored: PANSealed is the PAN
// sealed under the token-vault key, Fingerprint (32 lower-case hex digits)
// is the lookup key and MaskedPAN the printable form. Expiry is YYMM.
type Card struct {
	ID          int64
	ProductID   int64
	AccountID   int64
	Fingerprint string
	PANSealed   []byte
	MaskedPAN   string
	Expiry      string
	Status      CardStatus
	CreatedAt   time.Time
}

// HoldStatus is the state of a hold.
type HoldStatus string

// Hold statuses.
const (
	HoldOpen     HoldStatus = "open"
	HoldReleased HoldStatus = "released"
	HoldCaptured HoldStatus = "captured"
)

// Hold reserves Amount of an account's available funds until it is captured,
// released or expires.
type Hold struct {
	ID        int64
	AccountID int64
	Amount    int64
	Currency  string
	ExpiresAt time.Time
	Status    HoldStatus
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Transfer is one double-entry movement of money: its postings sum to zero
// per currency.
type Transfer struct {
	ID        int64
	Kind      string
	CreatedAt time.Time
	Postings  []Posting
}

// Posting is one leg of a transfer: a signed amount on one account.
type Posting struct {
	TransferID int64
	AccountID  int64
	Amount     int64
	Currency   string
}

// AuthStatus is the state of an authorization row.
type AuthStatus string

// Authorization statuses.
const (
	AuthDeclined AuthStatus = "declined" // refused; no money moved
	AuthHeld     AuthStatus = "held"     // approved; a hold is open
	AuthCaptured AuthStatus = "captured" // approved; money posted
	AuthReversed AuthStatus = "reversed" // approved, then reversed by a 1420
	AuthAnswered AuthStatus = "answered" // a reversal or advice answered; see ActionCode
)

// Authorization is one request the center answered, kept so that a repeat
// with the same IdempotencyKey gets the same answer (ActionCode,
// ApprovalCode, RRN) and so that reversals and advices can find it. Zero IDs
// mean "none".
type Authorization struct {
	ID             int64
	IdempotencyKey string
	GatewayID      string
	TerminalID     string
	STAN           string
	MTI            string
	ProcessingCode string
	FunctionCode   string
	LocalTime      string
	Amount         int64
	Currency       string
	CardID         int64
	AccountID      int64
	ActionCode     iso93.ActionCode
	ApprovalCode   string
	RRN            string
	HoldID         int64
	TransferID     int64
	OriginalID     int64
	Status         AuthStatus
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// AuditRecord is one entry of the audit trail. Detail never carries card
// data or key material.
type AuditRecord struct {
	ID     int64
	At     time.Time
	Kind   string
	Actor  string
	Detail string
}

// TransferImbalance is a transfer whose postings in one currency do not sum
// to zero.
type TransferImbalance struct {
	TransferID int64
	Currency   string
	Sum        int64
}

// AccountMismatch is an account whose stored Balance or Held differs from
// what its postings and open holds prove, or whose postings are in another
// currency.
type AccountMismatch struct {
	AccountID       int64
	Balance         int64 // stored
	PostingsSum     int64 // proved
	Held            int64 // stored
	OpenHoldsSum    int64 // proved
	ForeignPostings int64 // postings whose currency is not the account's
}
