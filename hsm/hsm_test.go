package hsm_test

import (
	"testing"

	"github.com/posgate/posgate/hsm/hsmtest"
)

func TestMain(m *testing.M) { hsmtest.Main(m) }
