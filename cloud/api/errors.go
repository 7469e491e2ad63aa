package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/posgate/posgate/cloud/acquiring"
	"github.com/posgate/posgate/cloud/controls"
	"github.com/posgate/posgate/cloud/issuing"
	"github.com/posgate/posgate/cloud/store"
)

// Error is an API error answer: {"error": {"code": ..., "message": ...}}
// with HTTP status Status. Codes are listed in docs/api.md; messages never
// carry card data.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns the code and message.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errBadRequest(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errForbidden(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: msg}
}

func errNotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

// maskedLike matches a masked PAN (digits with a run of '*') so that it is
// scrubbed from messages even in its masked form, and longDigits a run of
// digits as long as a PAN.
var (
	maskedLike = regexp.MustCompile(`[0-9]{4,}\*+[0-9]{2,}`)
	longDigits = regexp.MustCompile(`[0-9]{12,}`)
)

// clientMessage is err's text without anything PAN-like.
func clientMessage(err error) string { return scrub(err.Error()) }

func scrub(s string) string {
	return longDigits.ReplaceAllString(maskedLike.ReplaceAllString(s, "[card]"), "[redacted]")
}

// classify maps a handler error to its answer.
func classify(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: clientMessage(err)}
	case errors.Is(err, issuing.ErrTransition):
		return &Error{Status: http.StatusConflict, Code: "transition_not_allowed", Message: clientMessage(err)}
	case errors.Is(err, store.ErrDuplicate):
		return &Error{Status: http.StatusConflict, Code: "already_exists", Message: clientMessage(err)}
	case errors.Is(err, store.ErrReference):
		return &Error{Status: http.StatusBadRequest, Code: "unknown_reference", Message: clientMessage(err)}
	case errors.Is(err, controls.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_controls", Message: clientMessage(err)}
	case errors.Is(err, issuing.ErrInvalid), errors.Is(err, acquiring.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_field", Message: clientMessage(err)}
	case errors.Is(err, issuing.ErrBINExhausted):
		return &Error{Status: http.StatusConflict, Code: "bin_exhausted", Message: "no unused PAN found in the product's BIN range"}
	}
	return nil
}

// fail writes err's answer; an error nothing classifies is a server fault:
// logged and answered 500 without detail.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if e == nil {
		s.cfg.Logger.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", clientMessage(err))
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	writeError(w, e)
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posgate"`)
	}
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

// writeJSON writes v as the JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads r's JSON body into v strictly: Content-Type
// application/json, at most max bytes, no unknown fields, one value and
// nothing after it.
func decode(r *http.Request, w http.ResponseWriter, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the body must be application/json"}
		}
	}
	body := http.MaxBytesReader(w, r.Body, max)
	return decodeJSON(body, v)
}

// decodeJSON decodes exactly one JSON value from rd into v, refusing
// unknown fields and trailing data.
func decodeJSON(rd io.Reader, v any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return jsonError(err)
		}
		return errBadRequest("invalid_json", "the body must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
			Message: fmt.Sprintf("the body must be at most %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return errBadRequest("invalid_json", "the body is empty")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("invalid_json", "the body is not valid JSON")
	case errors.As(err, &typ):
		return errBadRequest("invalid_field", "field %q has the wrong JSON type (want %s)", scrub(typ.Field), typ.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errBadRequest("unknown_field", "%s", scrub(strings.TrimPrefix(err.Error(), "json: ")))
	}
	return errBadRequest("invalid_json", "the body could not be decoded")
}

// missing is the error for a required field absent from the body.
func missing(field string) error {
	return errBadRequest("missing_field", "field %q is required", field)
}
