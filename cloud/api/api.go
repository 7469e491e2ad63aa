// Package api is the center's REST API under /api/v1 (see docs/api.md):
// cards and their status, controls and reissue; accounts and top-ups;
// merchants and terminals; the authorization log; the negative file. It
// speaks JSON with strict decoding, authenticates every request but the
// OpenAPI document with an API key (stored as its SHA-256) and scopes
// head-office keys to their merchant.
//
// No response ever carries a clear PAN, track data, CVV or PIN: cards are
// shown by id and masked PAN only. Card production obtains the PAN of a
// newly issued card out of band (from the token vault), not through this
// API.
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/store"
)

// Prefix is the path every route of the API starts with.
const Prefix = "/api/v1"

// DefaultMaxBody is the request body limit when Config.MaxBody is zero.
const DefaultMaxBody = 64 << 10

// KeyPrefix starts every API key, so that a leaked key is recognisable.
const KeyPrefix = "pgk_"

// ErrBadConfig is returned by New for a Config that cannot serve.
var ErrBadConfig = errors.New("api: bad config")

//go:embed openapi.json
var openAPI []byte

// Config is what the API serves from.
type Config struct {
	// Store is the center's database. Required.
	Store *store.Store
	// Issuer issues and manages cards. Required; its Store should be Store.
	Issuer *issuing.Issuer
	// Acquirer registers merchants and terminals. Required.
	Acquirer *acquiring.Acquirer
	// Logger receives server faults (never card data); nil discards.
	Logger *slog.Logger
	// MaxBody bounds request bodies in bytes; zero means DefaultMaxBody.
	MaxBody int64
}

// Validate reports every missing or bad field of c.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, fmt.Errorf("store is required: %w", ErrBadConfig))
	}
	if c.Issuer == nil {
		errs = append(errs, fmt.Errorf("issuer is required: %w", ErrBadConfig))
	}
	if c.Acquirer == nil {
		errs = append(errs, fmt.Errorf("acquirer is required: %w", ErrBadConfig))
	}
	if c.MaxBody < 0 {
		errs = append(errs, fmt.Errorf("max body %d must be >= 0: %w", c.MaxBody, ErrBadConfig))
	}
	return errors.Join(errs...)
}

// New validates cfg and returns the API's handler, which serves every
// route under Prefix (and answers 404 for other paths under it). Mount it
// at "/api/v1/" or at the root. The handler is safe for concurrent use.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, mux: http.NewServeMux()}
	for _, rt := range routes {
		s.mux.Handle(rt.method+" "+Prefix+rt.path, s.wrap(rt))
	}
	s.mux.HandleFunc(Prefix+"/", s.fallback)
	return s.mux, nil
}

// server holds the API's configuration; it is immutable after New.
type server struct {
	cfg Config
	mux *http.ServeMux
}

// access says who may call a route.
type access int

const (
	public    access = iota // no key (the OpenAPI document)
	adminOnly               // admin keys
	scoped                  // admin keys, and head-office keys within their merchant
)

// principal is the authenticated caller.
type principal struct {
	role     store.APIRole
	merchant string // head office only
}

// admin reports whether p may see everything.
func (p principal) admin() bool { return p.role == store.RoleAdmin }

type handlerFunc func(s *server, w http.ResponseWriter, r *http.Request, p principal) error

type route struct {
	method, path string
	access       access
	h            handlerFunc
}

// routes is every route of the API; the OpenAPI document lists exactly
// these (TestOpenAPIMatchesRoutes).
var routes = []route{
	{"GET", "/openapi.json", public, getOpenAPI},
	{"GET", "/cards", adminOnly, listCards},
	{"POST", "/cards", adminOnly, issueCard},
	{"GET", "/cards/{id}", adminOnly, getCard},
	{"POST", "/cards/{id}/status", adminOnly, setCardStatus},
	{"PUT", "/cards/{id}/controls", adminOnly, putControls},
	{"POST", "/cards/{id}/reissue", adminOnly, reissueCard},
	{"GET", "/accounts/{id}", adminOnly, getAccount},
	{"POST", "/accounts/{id}/topups", adminOnly, topUp},
	{"GET", "/merchants", scoped, listMerchants},
	{"POST", "/merchants", adminOnly, createMerchant},
	{"POST", "/merchants/{id}/terminals", scoped, createTerminal},
	{"GET", "/transactions", scoped, listTransactions},
	{"GET", "/negative-file", adminOnly, getNegativeFile},
	{"POST", "/negative-file", adminOnly, addNegativeEntry},
	{"DELETE", "/negative-file/{fingerprint}", adminOnly, removeNegativeEntry},
}

// wrap authenticates, authorises and runs a route, turning its error into
// the JSON error answer. A panic in a handler is answered 500 and logged.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				s.cfg.Logger.Error("api handler panic", "method", rt.method, "route", rt.path, "panic", fmt.Sprint(v))
				writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
			}
		}()
		var p principal
		if rt.access != public {
			var err error
			if p, err = s.authenticate(r); err != nil {
				s.fail(w, r, err)
				return
			}
			if rt.access == adminOnly && !p.admin() {
				s.fail(w, r, errForbidden("this route needs an admin key"))
				return
			}
		}
		if err := rt.h(s, w, r, p); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fallback answers paths under Prefix that no route serves: 405 when the
// path exists with another method, else 404.
func (s *server) fallback(w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH"} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != Prefix+"/" {
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: "method " + r.Method + " is not allowed on this path"})
			return
		}
	}
	writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"})
}

// authenticate reads the bearer key and looks up its hash.
func (s *server) authenticate(r *http.Request) (principal, error) {
	h := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		return principal{}, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "an API key is required: Authorization: Bearer <key>"}
	}
	var k store.APIKey
	err := s.cfg.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		k, err = tx.APIKeyByHash(r.Context(), HashKey(key))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "unknown API key"}
	}
	if err != nil {
		return principal{}, fmt.Errorf("look up API key: %w", err)
	}
	return principal{role: k.Role, merchant: k.MerchantID}, nil
}

// HashKey returns the stored form of an API key: hex SHA-256.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateKey makes a new API key with the given role, stores its hash and
// returns the key itself, which exists nowhere else afterwards: show it
// once to whoever asked for it. A head-office key needs the id of an
// existing merchant; an admin key takes none.
func CreateKey(ctx context.Context, st *store.Store, role store.APIRole, merchantID string) (string, error) {
	switch {
	case role == store.RoleAdmin && merchantID != "":
		return "", fmt.Errorf("create API key: an admin key has no merchant: %w", ErrBadConfig)
	case role == store.RoleHeadOffice && merchantID == "":
		return "", fmt.Errorf("create API key: a head-office key needs a merchant: %w", ErrBadConfig)
	case role != store.RoleAdmin && role != store.RoleHeadOffice:
		return "", fmt.Errorf("create API key: unknown role %q: %w", role, ErrBadConfig)
	}
	var b [32]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("create API key: draw key: %w", err)
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	err := st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.InsertAPIKey(ctx, store.APIKey{Hash: HashKey(key), Role: role, MerchantID: merchantID})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create API key: %w", err)
	}
	return key, nil
}

func getOpenAPI(_ *server, w http.ResponseWriter, _ *http.Request, _ principal) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(openAPI)
	return err
}
