package hsm

import (
	"fmt"
	"os"
	"sync"

	"github.com/miekg/pkcs11"
)

// module is one loaded and C_Initialize'd PKCS#11 library, shared by every
// Token of the process that uses the same path.
type module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int // guarded by modulesMu
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
	// softhsmConf is the SOFTHSM2_CONF in force while any module is
	// initialised; guarded by modulesMu.
	softhsmConf string
)

// acquireModule loads and initialises the module at path, or returns the
// already initialised one, adding a reference.
func acquireModule(path string) (*module, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m, ok := modules[path]; ok {
		m.refs++
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("load PKCS#11 module %s: %w (for SoftHSM2: apt-get install -y softhsm2)", path, ErrNotInstalled)
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("load PKCS#11 module %s: dlopen failed: %w", path, ErrNotInstalled)
	}
	// CKF_OS_LOCKING_OK: sessions are used from many goroutines (OS
	// threads); without it SoftHSM would switch its internal locks off.
	if err := ctx.Initialize(pkcs11.InitializeWithFlags(pkcs11.CKF_OS_LOCKING_OK)); err != nil && !rvIs(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("C_Initialize %s (SOFTHSM2_CONF=%q): %w", path, os.Getenv("SOFTHSM2_CONF"), err)
	}
	if len(modules) == 0 {
		softhsmConf = os.Getenv("SOFTHSM2_CONF")
	}
	m := &module{path: path, ctx: ctx, refs: 1}
	modules[path] = m
	return m, nil
}

// release drops a reference and finalises the module after the last one.
func (m *module) release() error {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(modules, m.path)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	if err != nil {
		return fmt.Errorf("C_Finalize %s: %w", m.path, err)
	}
	return nil
}
