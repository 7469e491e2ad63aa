package tlink

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config holds an endpoint's timers and limits. The zero value of each field
// means its default; Validate refuses values out of range rather than
// clamping them. Both ends of a link should use the same values.
type Config struct {
	// AckTimeout is how long Send waits for ACK after a frame has been
	// written before it retransmits. Default 1s; 10ms..60s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// InterByteTimeout is the longest gap allowed between two bytes of one
	// frame; a frame whose bytes stop arriving is dropped. Default 200ms;
	// 1ms..AckTimeout (exclusive).
	InterByteTimeout time.Duration `yaml:"inter_byte_timeout"`
	// ResponseTimeout is how long Request waits for the response after its
	// frame was acknowledged. Default 30s; 10ms..10m.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// MaxRetries is how many times a frame is retransmitted after the
	// first transmission before Send gives up with ErrNoAck. Default 3;
	// 1..10.
	MaxRetries int `yaml:"max_retries"`
	// MaxPayload is the largest payload sent or accepted. Default 8192;
	// 1..65535.
	MaxPayload int `yaml:"max_payload"`
	// BitRate, when not zero, is the line's bit rate (a serial port's
	// baud); each frame's ack timeout is then extended by the time the
	// frame takes on the line at 10 bits per byte. Zero for TCP.
	BitRate int `yaml:"bit_rate"`
	// DuplicateWindow is how long after receiving a frame an identical
	// frame (same sequence number and check value) is treated as a
	// retransmission: ACKed again, not delivered. Default 10s; it must be
	// at least (MaxRetries+1) × AckTimeout.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// ReceiveQueue is how many received messages wait for Receive before
	// further frames go unacknowledged (the peer then retransmits).
	// Default 16; 1..4096.
	ReceiveQueue int `yaml:"receive_queue"`
	// Logger receives dropped-frame and retransmission events, never
	// payload bytes. Nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Defaults.
const (
	DefaultAckTimeout       = time.Second
	DefaultInterByteTimeout = 200 * time.Millisecond
	DefaultResponseTimeout  = 30 * time.Second
	DefaultMaxRetries       = 3
	DefaultMaxPayload       = 8192
	DefaultDuplicateWindow  = 10 * time.Second
	DefaultReceiveQueue     = 16
)

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.InterByteTimeout == 0 {
		c.InterByteTimeout = DefaultInterByteTimeout
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = DefaultResponseTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.ReceiveQueue == 0 {
		c.ReceiveQueue = DefaultReceiveQueue
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every field out of range, each naming its key, value and
// rule, all wrapping ErrConfig. Zero fields are checked as their defaults.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	bad := func(key string, v any, rule string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s: %w", key, v, rule, ErrConfig))
	}
	if d.AckTimeout < 10*time.Millisecond || d.AckTimeout > time.Minute {
		bad("ack_timeout", c.AckTimeout, "must be 10ms..60s")
	}
	if d.InterByteTimeout < time.Millisecond || d.InterByteTimeout >= d.AckTimeout {
		bad("inter_byte_timeout", c.InterByteTimeout, "must be at least 1ms and shorter than ack_timeout")
	}
	if d.ResponseTimeout < 10*time.Millisecond || d.ResponseTimeout > 10*time.Minute {
		bad("response_timeout", c.ResponseTimeout, "must be 10ms..10m")
	}
	if d.MaxRetries < 1 || d.MaxRetries > 10 {
		bad("max_retries", c.MaxRetries, "must be 1..10")
	}
	if d.MaxPayload < 1 || d.MaxPayload > MaxPayload {
		bad("max_payload", c.MaxPayload, "must be 1..65535")
	}
	if d.BitRate < 0 {
		bad("bit_rate", c.BitRate, "must not be negative")
	}
	if d.DuplicateWindow < time.Duration(d.MaxRetries+1)*d.AckTimeout {
		bad("duplicate_window", c.DuplicateWindow, "must be at least (max_retries+1) × ack_timeout")
	}
	if d.ReceiveQueue < 1 || d.ReceiveQueue > 4096 {
		bad("receive_queue", c.ReceiveQueue, "must be 1..4096")
	}
	return errors.Join(errs...)
}
