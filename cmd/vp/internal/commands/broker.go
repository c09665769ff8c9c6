package commands

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/vision-platform/vp/local/broker"
	"github.com/vision-platform/vp/local/up"
)

func newBrokerCmd(rf *rootFlags) *cobra.Command {
	var c up.BrokerConfig
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the local broker alone (Knative Broker semantics on JetStream)",
		Example: `  vp broker --data ./data --triggers triggers.yaml --addr 127.0.0.1:8080
  curl -X POST http://127.0.0.1:8080/default/default -H 'ce-specversion: 1.0' \
       -H 'ce-id: 1' -H 'ce-source: /me' -H 'ce-type: hello' -d '{}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := stderrLogger(rf)
			if err != nil {
				return err
			}
			return up.RunBroker(cmd.Context(), c, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.DataDir, "data", "", "directory for the embedded JetStream store")
	f.StringVar(&c.NATSURL, "nats-url", "", "use this NATS cluster (with JetStream) instead of the embedded server")
	f.StringVar(&c.TriggersFile, "triggers", "", "file of Knative Trigger objects (multi-document YAML)")
	f.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address")
	f.Int64Var(&c.MaxEventBytes, "max-event-bytes", 1<<20, "largest accepted request body")
	f.DurationVar(&c.DedupWindow, "dedup-window", 10*time.Minute, "how long source+id duplicates are dropped")
	f.IntVar(&c.Parallelism, "parallelism", 64, "deliveries in flight per trigger")
	f.BoolVar(&c.ValidateVocabulary, "validate-vocabulary", false, "refuse dev.visionplatform.* events whose payload is invalid")
	f.BoolVar(&c.SyncAlways, "sync-always", false, "fsync every stored event before answering 202")
	f.StringSliceVar(&c.Brokers, "broker", nil, "declare a broker namespace/name that has no trigger (repeatable)")
	f.DurationVar(&c.ReadTimeout, "read-timeout", broker.DefaultReadTimeout, "longest a client may take to send one request, headers and body (408 after)")
	f.IntVar(&c.MaxConns, "max-conns", broker.DefaultMaxConns, "connections the ingress keeps open at once (503 beyond)")
	f.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", broker.DefaultMaxConnsPerIP, "connections one client address may keep open (429 beyond; local clients share 127.0.0.1)")
	f.IntVar(&c.MaxHeaderBytes, "max-header-bytes", broker.DefaultMaxHeaderBytes, "largest request line and headers (431 beyond)")
	return cmd
}
