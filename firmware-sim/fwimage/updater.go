package fwimage

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/posgate/posgate/terminal/tlink"
)

// Files in an Updater's directory.
const (
	partialData  = "partial.bin"    // the image bytes received so far
	partialMeta  = "partial.json"   // which transfer partial.bin belongs to
	installedImg = "firmware.img"   // the installed, verified image
	installedMet = "installed.json" // the installed version
)

type partialInfo struct {
	Image string `json:"image"`
	Total uint32 `json:"total"`
}

type installedInfo struct {
	Version string `json:"version"`
	Image   string `json:"image"`
}

// Updater is the terminal side of a firmware transfer over the terminal
// link: it takes FirmwareChunks in order, stores each one durably (fsync)
// in its directory before acknowledging it, so a transfer cut by a restart
// or a pulled cable resumes at the next offset it still needs, and installs
// only an image that verifies under the vendor key and is newer than the
// installed one. An Updater is not safe for concurrent use: the firmware
// feeds it from its one message loop.
type Updater struct {
	dir       string
	pub       ed25519.PublicKey
	installed Version

	image  string // transfer in progress; "" when none
	total  uint32
	got    uint32
	head   []byte // the first HeaderSize bytes once received
	headOK bool   // head checked against total and installed
}

// OpenUpdater opens (creating it) the firmware directory dir. The installed
// version is the one recorded there, or factory when nothing was ever
// installed. A partial transfer found there is resumed.
func OpenUpdater(dir string, pub ed25519.PublicKey, factory Version) (*Updater, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("open firmware updater: vendor key of %d bytes: %w", len(pub), ErrKeyFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open firmware updater: %w", err)
	}
	u := &Updater{dir: dir, pub: pub, installed: factory}
	raw, err := os.ReadFile(filepath.Join(dir, installedMet))
	switch {
	case err == nil:
		var in installedInfo
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("open firmware updater: %s: %w", installedMet, err)
		}
		if u.installed, err = ParseVersion(in.Version); err != nil {
			return nil, fmt.Errorf("open firmware updater: %s: %w", installedMet, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open firmware updater: %w", err)
	}
	if err := u.loadPartial(); err != nil {
		return nil, fmt.Errorf("open firmware updater: %w", err)
	}
	return u, nil
}

func (u *Updater) loadPartial() error {
	raw, err := os.ReadFile(filepath.Join(u.dir, partialMeta))
	if errors.Is(err, os.ErrNotExist) {
		return u.discard()
	}
	if err != nil {
		return err
	}
	var p partialInfo
	if json.Unmarshal(raw, &p) != nil || p.Image == "" || p.Total == 0 {
		return u.discard()
	}
	f, err := os.Open(filepath.Join(u.dir, partialData))
	if errors.Is(err, os.ErrNotExist) {
		return u.discard()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > int64(p.Total) {
		return u.discard()
	}
	u.image, u.total, u.got = p.Image, p.Total, uint32(st.Size())
	if u.got >= HeaderSize {
		u.head = make([]byte, HeaderSize)
		if _, err := io.ReadFull(f, u.head); err != nil {
			return err
		}
	}
	return nil
}

// Installed returns the installed firmware version.
func (u *Updater) Installed() Version { return u.installed }

// Progress reports the transfer in progress: its image id, the next offset
// needed and the image size; ok is false when none is.
func (u *Updater) Progress() (image string, next, total uint32, ok bool) {
	return u.image, u.got, u.total, u.image != ""
}

// Chunk stores one chunk and returns the FirmwareAck to send. The error is
// nil for FirmwareOK, FirmwareResend and FirmwareInstalled; for
// FirmwareBadImage it says why the image was discarded (ErrFormat,
// ErrDigest, ErrSignature, ErrDowngrade, or a storage failure). A chunk at
// an unexpected offset is answered FirmwareResend with the offset needed;
// offset 0 of a different image (id or size) abandons the transfer in
// progress and starts the new one.
func (u *Updater) Chunk(c *tlink.FirmwareChunk) (tlink.FirmwareAck, error) {
	ack := tlink.FirmwareAck{Ref: c.Ref, Image: c.Image}
	bad := func(err error) (tlink.FirmwareAck, error) {
		if derr := u.discard(); derr != nil {
			err = errors.Join(err, derr)
		}
		ack.Status, ack.NextOffset = tlink.FirmwareBadImage, 0
		return ack, fmt.Errorf("firmware image %q: %w", c.Image, err)
	}
	if c.Total < Overhead || c.Total > Overhead+MaxBody {
		return bad(fmt.Errorf("size %d outside %d..%d: %w", c.Total, Overhead, Overhead+MaxBody, ErrFormat))
	}
	if uint64(c.Offset)+uint64(len(c.Data)) > uint64(c.Total) || len(c.Data) == 0 {
		return bad(fmt.Errorf("chunk at %d of %d bytes runs past size %d: %w", c.Offset, len(c.Data), c.Total, ErrFormat))
	}
	if c.Image != u.image || c.Total != u.total {
		if c.Offset != 0 {
			ack.Status, ack.NextOffset = tlink.FirmwareResend, 0
			return ack, nil
		}
		if err := u.start(c.Image, c.Total); err != nil {
			return bad(err)
		}
	}
	if c.Offset != u.got {
		ack.Status, ack.NextOffset = tlink.FirmwareResend, u.got
		return ack, nil
	}
	if err := u.appendData(c.Data); err != nil {
		return bad(err)
	}
	if len(u.head) < HeaderSize && u.got >= HeaderSize {
		u.head = make([]byte, HeaderSize)
		if err := u.readAt(u.head, 0); err != nil {
			return bad(err)
		}
	}
	if len(u.head) == HeaderSize && !u.headOK {
		h, err := ParseHeader(u.head)
		if err != nil {
			return bad(err)
		}
		if h.ImageSize() != int(u.total) {
			return bad(fmt.Errorf("header announces %d bytes, transfer size %d: %w", h.ImageSize(), u.total, ErrFormat))
		}
		if err := CheckUpgrade(u.installed, h.Version); err != nil {
			return bad(err)
		}
		u.headOK = true
	}
	if u.got < u.total {
		ack.Status, ack.NextOffset = tlink.FirmwareOK, u.got
		return ack, nil
	}
	img, err := os.ReadFile(filepath.Join(u.dir, partialData))
	if err != nil {
		return bad(err)
	}
	h, _, err := Verify(u.pub, img)
	if err != nil {
		return bad(err)
	}
	if err := CheckUpgrade(u.installed, h.Version); err != nil {
		return bad(err)
	}
	if err := u.install(img, h.Version, c.Image); err != nil {
		return bad(err)
	}
	ack.Status, ack.NextOffset = tlink.FirmwareInstalled, c.Total
	return ack, nil
}

func (u *Updater) start(image string, total uint32) error {
	if err := u.discard(); err != nil {
		return err
	}
	b, _ := json.Marshal(partialInfo{Image: image, Total: total})
	if err := writeFileSync(filepath.Join(u.dir, partialMeta), b); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(u.dir, partialData), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	u.image, u.total = image, total
	return nil
}

func (u *Updater) appendData(p []byte) error {
	f, err := os.OpenFile(filepath.Join(u.dir, partialData), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store chunk: %w", err)
	}
	_, err = f.Write(p)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store chunk: %w", err)
	}
	u.got += uint32(len(p))
	return nil
}

func (u *Updater) readAt(p []byte, off int64) error {
	f, err := os.Open(filepath.Join(u.dir, partialData))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadAt(p, off)
	return err
}

func (u *Updater) install(img []byte, v Version, image string) error {
	if err := writeFileSync(filepath.Join(u.dir, installedImg), img); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	b, _ := json.Marshal(installedInfo{Version: v.String(), Image: image})
	if err := writeFileSync(filepath.Join(u.dir, installedMet), b); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	u.installed = v
	return u.discard()
}

// discard forgets the transfer in progress and removes its files.
func (u *Updater) discard() error {
	u.image, u.total, u.got, u.head, u.headOK = "", 0, 0, nil, false
	var errs []error
	for _, n := range []string{partialMeta, partialData} {
		if err := os.Remove(filepath.Join(u.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeFileSync writes b to path through a synced temporary file and a
// rename, so path holds either the old or the new content after a crash.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Requester sends a request on the terminal link and returns its response;
// *tlink.Endpoint is one.
type Requester interface {
	Request(ctx context.Context, k tlink.Kind, payload []byte) (tlink.Message, error)
}

// Push sends img to the terminal behind r as image id in chunks of at most
// chunk bytes (tlink.MaxChunk when zero), following the terminal's
// next_offset so that a transfer the terminal already partly holds resumes
// where it stopped. It returns nil once the terminal answers installed and
// an error wrapping ErrRefused (with the terminal's answer) when it answers
// bad image.
func Push(ctx context.Context, r Requester, image string, img []byte, chunk int) error {
	if chunk <= 0 || chunk > tlink.MaxChunk {
		chunk = tlink.MaxChunk
	}
	if len(img) == 0 || len(img) > Overhead+MaxBody {
		return fmt.Errorf("push firmware %q: image of %d bytes: %w", image, len(img), ErrFormat)
	}
	off, resends := 0, 0
	for {
		end := min(off+chunk, len(img))
		c := tlink.FirmwareChunk{Ref: fmt.Sprintf("fw-%d", off), Image: image, Offset: uint32(off), Total: uint32(len(img)), Data: img[off:end]}
		p, err := c.MarshalBinary()
		if err != nil {
			return fmt.Errorf("push firmware %q at %d: %w", image, off, err)
		}
		m, err := r.Request(ctx, tlink.KindFirmwareChunk, p)
		if err != nil {
			return fmt.Errorf("push firmware %q at %d: %w", image, off, err)
		}
		var a tlink.FirmwareAck
		if err := a.UnmarshalBinary(m.Payload); err != nil {
			return fmt.Errorf("push firmware %q at %d: firmware-ack: %w", image, off, err)
		}
		switch a.Status {
		case tlink.FirmwareInstalled:
			return nil
		case tlink.FirmwareBadImage:
			return fmt.Errorf("push firmware %q: terminal discarded the image at %d: %w", image, off, ErrRefused)
		case tlink.FirmwareResend:
			if resends++; resends > 3 {
				return fmt.Errorf("push firmware %q: terminal keeps asking for offset %d: %w", image, a.NextOffset, ErrRefused)
			}
		case tlink.FirmwareOK:
			resends = 0
		default:
			return fmt.Errorf("push firmware %q: firmware-ack status %d: %w", image, a.Status, ErrRefused)
		}
		if int(a.NextOffset) >= len(img) {
			return fmt.Errorf("push firmware %q: terminal asks for offset %d of %d without installing: %w", image, a.NextOffset, len(img), ErrRefused)
		}
		off = int(a.NextOffset)
	}
}
