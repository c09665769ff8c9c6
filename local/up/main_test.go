package up

import (
	"os"
	"testing"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// TestMain quiets the package-level zerolog logger knative.dev/func-go
// logs its start-up through, as vp's root command does.
func TestMain(m *testing.M) {
	zlog.Logger = zlog.Logger.Level(zerolog.WarnLevel)
	os.Exit(m.Run())
}
