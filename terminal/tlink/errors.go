package tlink

import "errors"

// Sentinel errors. Frame errors arrive wrapped in a *FrameError; payload
// errors are wrapped with the tag and kind being decoded; endpoint errors are
// wrapped with the kind being sent. None carries payload bytes.
var (
	// ErrFrameType is returned by AppendFrame for an unknown frame type.
	ErrFrameType = errors.New("tlink: unknown frame type")
	// ErrTooLong means a payload exceeds the limit in force.
	ErrTooLong = errors.New("tlink: payload too long")
	// ErrBadCheck means a data frame's CRC did not match; the receiver NAKs it.
	ErrBadCheck = errors.New("tlink: bad check value")
	// ErrBadLength means a data frame's length field disagrees with the
	// number of payload bytes between STX and ETX.
	ErrBadLength = errors.New("tlink: length field mismatch")
	// ErrShortFrame means ETX and the check value came before a full header.
	ErrShortFrame = errors.New("tlink: frame shorter than its header")
	// ErrBadEscape means a DLE was followed by a byte that does not encode a
	// special byte, or a raw ETX or DLE appeared where it cannot.
	ErrBadEscape = errors.New("tlink: bad escape sequence")
	// ErrAborted means a data frame was cut off by a new STX, ACK or NAK,
	// or by the inter-byte timeout.
	ErrAborted = errors.New("tlink: frame aborted")

	// ErrPayload means a payload is malformed: bad TLV structure, a tag out
	// of order or repeated, an unknown tag, or a value that breaks its rule.
	ErrPayload = errors.New("tlink: malformed payload")
	// ErrMissingField means a payload lacks a field its kind requires.
	ErrMissingField = errors.New("tlink: missing required field")

	// ErrNoAck is returned by Send when the peer did not acknowledge a frame
	// after the first transmission and MaxRetries retransmissions. The peer
	// may or may not have received it.
	ErrNoAck = errors.New("tlink: no acknowledgement")
	// ErrNoResponse is returned by Request when the response did not arrive
	// within the response timeout. The request was acknowledged, so the peer
	// has it; see LastTransaction before anything is retried.
	ErrNoResponse = errors.New("tlink: no response")
	// ErrNotRequest is returned by Request for a kind that has no response.
	ErrNotRequest = errors.New("tlink: kind has no response kind")
	// ErrUnresolved is returned when a transaction command is sent while the
	// outcome of an earlier one is unknown (its acknowledgement or result
	// was lost). Call LastTransaction first; a sale is never blindly resent.
	ErrUnresolved = errors.New("tlink: earlier transaction outcome unknown")
	// ErrClosed is returned by every call once the endpoint has stopped
	// (Close, Run's context ended, or the transport failed); the error also
	// wraps the cause.
	ErrClosed = errors.New("tlink: endpoint closed")
	// ErrRunning is returned by a second call to Run.
	ErrRunning = errors.New("tlink: Run already called")
	// ErrConfig is wrapped by every configuration error.
	ErrConfig = errors.New("tlink: invalid config")
)
