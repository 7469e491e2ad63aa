package iso93

import (
	"fmt"
	"time"
)

// MaxSTAN is the largest trace number DE 11 (n6) can carry.
const MaxSTAN = 999999

// Layouts of the date-time data elements, for time.Format and time.Parse.
const (
	// LayoutTransmissionTime is DE 7, transmission date and time,
	// MMDDhhmmss in UTC.
	LayoutTransmissionTime = "0102150405"
	// LayoutLocalTime is DE 12, local date and time of the transaction,
	// YYMMDDhhmmss in the terminal's (or gateway's) local time.
	LayoutLocalTime = "060102150405"
)

// NextSTAN maps a counter value n onto the STAN range: n%MaxSTAN + 1. A
// counter that steps by one (the previous STAN, or an atomic counter's
// Add(1)) so yields STANs that run 1..MaxSTAN and wrap to 1.
func NextSTAN(n uint32) uint32 { return n%MaxSTAN + 1 }

// FormatSTAN returns stan as DE 11's six digits. stan should be at most
// MaxSTAN (NextSTAN's range); a larger value gives more digits, which
// validation refuses.
func FormatSTAN(stan uint32) string { return fmt.Sprintf("%06d", stan) }

// TransmissionTime returns DE 7 for t: t in UTC as MMDDhhmmss.
func TransmissionTime(t time.Time) string { return t.UTC().Format(LayoutTransmissionTime) }

// LocalTime returns DE 12 for t: t in its own location as YYMMDDhhmmss.
func LocalTime(t time.Time) string { return t.Format(LayoutLocalTime) }

// ParseLocalTime reads DE 12 (YYMMDDhhmmss). DE 12 names no zone, so the
// result carries the clock reading in UTC (as time.Parse gives it).
func ParseLocalTime(s string) (time.Time, error) { return time.Parse(LayoutLocalTime, s) }
