// Package redact is the last line of defence against a clear PAN reaching a
// log: a log/slog handler wrapper that replaces anything that looks like a
// card number before the inner handler formats the record.
//
// "Looks like a card number" means a run of 13 to 19 decimal digits whose
// last digit is a valid Luhn check digit. The digits may be written in
// groups separated by single spaces or dashes ("4111 1111 1111 1111",
// "4111-1111-1111-1111"). Each such span is replaced by "[PAN redacted]".
// Longer unbroken digit runs (more than 19 digits) are left alone, as are
// runs that fail Luhn: amounts, STANs, timestamps, reference numbers.
//
// The wrapper is a safety net, not the mechanism: card types already log
// masked (see p2pe/card). About one in ten 13-19 digit numbers passes Luhn
// by chance, so an innocent long number is occasionally redacted too.
//
// Every daemon builds its logger here (NewLogger), from the log section its
// configuration shares with the others (LogConfig), so that no process
// logs without the net.
package redact

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
)

// Replacement is the text that stands in for a redacted PAN.
const Replacement = "[PAN redacted]"

// PAN length limits of ISO/IEC 7812.
const (
	minDigits = 13
	maxDigits = 19
)

// String returns s with every PAN-like digit span replaced by Replacement.
// It returns s itself, without allocating, when there is nothing to redact.
// Safe for concurrent use.
func String(s string) string {
	r, _ := redact(s)
	return r
}

// span is one group of consecutive digits, s[start:end].
type span struct{ start, end int }

// isDigit reports whether c is an ASCII decimal digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// redact returns s with PAN-like spans replaced, and whether it changed.
func redact(s string) (string, bool) {
	var (
		b      strings.Builder
		copied int // s[:copied] has been written to b (when b is in use)
		groups []span
		buf    [8]span
	)
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// Collect a run of digit groups joined by single ' ' or '-'.
		groups = buf[:0]
		total := 0
		for {
			start := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			groups = append(groups, span{start, i})
			total += i - start
			if i+1 < len(s) && (s[i] == ' ' || s[i] == '-') && isDigit(s[i+1]) {
				i++
				continue
			}
			break
		}
		if total < minDigits {
			continue
		}
		for _, m := range matches(s, groups) {
			if b.Len() == 0 && copied == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[copied:m.start])
			b.WriteString(Replacement)
			copied = m.end
		}
	}
	if copied == 0 {
		return s, false
	}
	b.WriteString(s[copied:])
	return b.String(), true
}

// matches returns the PAN-like spans in one run of digit groups, left to
// right and not overlapping: from each group, the longest sequence of whole
// groups with 13 to 19 digits in total that passes Luhn.
func matches(s string, groups []span) []span {
	var out []span
	for i := 0; i < len(groups); {
		best, total := -1, 0
		for j := i; j < len(groups); j++ {
			total += groups[j].end - groups[j].start
			if total > maxDigits {
				break
			}
			if total >= minDigits && luhn(s, groups[i:j+1]) {
				best = j
			}
		}
		if best < 0 {
			i++
			continue
		}
		out = append(out, span{groups[i].start, groups[best].end})
		i = best + 1
	}
	return out
}

// luhn reports whether the digits of the groups pass the Luhn check.
func luhn(s string, groups []span) bool {
	sum, double := 0, false
	for g := len(groups) - 1; g >= 0; g-- {
		for k := groups[g].end - 1; k >= groups[g].start; k-- {
			d := int(s[k] - '0')
			if double {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			double = !double
		}
	}
	return sum%10 == 0
}

// handler is the slog.Handler returned by NewHandler.
type handler struct {
	inner slog.Handler
}

// NewHandler returns a handler that redacts PAN-like digit spans from the
// message, from attribute keys and from every string attribute value before
// passing the record to inner. Values are resolved first (slog.LogValuer),
// groups are walked recursively, and values of kind Any are checked in the
// forms a handler prints them: an error's Error(), a fmt.Stringer's or any
// value's %+v, a TextMarshaler's text, a value's JSON, and []byte as text.
// A value of kind Any that contains a PAN is replaced by the redacted
// string of the form that contained it; one that does not is passed on
// unchanged. The handler is safe for concurrent use if inner is.
func NewHandler(inner slog.Handler) slog.Handler {
	return &handler{inner: inner}
}

// Enabled reports whether inner handles records at level.
func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle redacts r into a new record and passes it to inner.
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(redactAttr(a))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

// WithAttrs redacts attrs and adds them to inner.
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = redactAttr(a)
	}
	return &handler{inner: h.inner.WithAttrs(out)}
}

// WithGroup opens a group (its name redacted) on inner.
func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{inner: h.inner.WithGroup(String(name))}
}

// redactAttr returns a with its key and value redacted.
func redactAttr(a slog.Attr) slog.Attr {
	a.Key = String(a.Key)
	a.Value = redactValue(a.Value)
	return a
}

// redactValue resolves v and redacts it.
func redactValue(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if r, ok := redact(v.String()); ok {
			return slog.StringValue(r)
		}
	case slog.KindGroup:
		as := v.Group()
		var out []slog.Attr
		for i, a := range as {
			ra := redactAttr(a)
			if out == nil && (ra.Key != a.Key || !ra.Value.Equal(a.Value)) {
				out = make([]slog.Attr, len(as))
				copy(out, as[:i])
			}
			if out != nil {
				out[i] = ra
			}
		}
		if out != nil {
			return slog.GroupValue(out...)
		}
	case slog.KindAny:
		return redactAny(v)
	}
	return v
}

// redactAny checks a value of kind Any in each form a handler may print.
func redactAny(v slog.Value) slog.Value {
	a := v.Any()
	switch x := a.(type) {
	case nil:
		return v
	case error:
		if r, ok := redact(x.Error()); ok {
			return slog.StringValue(r)
		}
	case []byte:
		if r, ok := redact(string(x)); ok {
			return slog.StringValue(r)
		}
		return v
	}
	if tm, ok := a.(encoding.TextMarshaler); ok {
		if t, err := tm.MarshalText(); err == nil {
			if r, ok := redact(string(t)); ok {
				return slog.StringValue(r)
			}
		}
	}
	if r, ok := redact(fmt.Sprintf("%+v", a)); ok {
		return slog.StringValue(r)
	}
	if j, err := json.Marshal(a); err == nil {
		if r, ok := redact(string(j)); ok {
			return slog.StringValue(r)
		}
	}
	return v
}
