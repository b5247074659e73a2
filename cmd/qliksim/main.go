// Command qliksim runs the QSEoW simulator: a development and test tool,
// not part of the sensegate binary.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sensegate/sensegate/tooling/devlog"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// shutdownGrace bounds how long the simulator waits for open requests.
const shutdownGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newQliksimCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qliksim:", err)
		os.Exit(1)
	}
}

func newQliksimCmd() *cobra.Command {
	var (
		configFile string
		flags      qliksim.Config
		debug      bool
	)
	cmd := &cobra.Command{
		Use:           "qliksim",
		SilenceUsage:  true,
		SilenceErrors: true,
		Short:         "Run the Qlik Sense Enterprise on Windows simulator (QPS, Engine, QRS) on loopback",
		Long: `Run a simulator of Qlik Sense Enterprise on Windows: the proxy side (virtual proxies,
ticket redemption, session cookies, Engine websockets, QRS), the QPS API over mutual TLS,
and an optional admin listener with inspection and fault controls.

The certificate export (root.pem, server.pem, server_key.pem, client.pem, client_key.pem)
is created in --cert-dir on first start and reused afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := qliksim.DefaultConfig()
			if configFile != "" {
				var err error
				if cfg, err = qliksim.LoadConfig(configFile); err != nil {
					return err
				}
			}
			// Flags given on the command line override the file.
			fl := cmd.Flags()
			if fl.Changed("proxy-listen") {
				cfg.ProxyListen = flags.ProxyListen
			}
			if fl.Changed("qps-listen") {
				cfg.QPSListen = flags.QPSListen
			}
			if fl.Changed("admin-listen") {
				cfg.AdminListen = flags.AdminListen
			}
			if fl.Changed("http") {
				cfg.ProxyHTTP = flags.ProxyHTTP
			}
			if fl.Changed("websocket-csrf") {
				cfg.WebsocketCSRF = flags.WebsocketCSRF
			}
			if fl.Changed("cert-dir") || cfg.CertDir == "" {
				cfg.CertDir = flags.CertDir
			}
			return runQliksim(cmd.Context(), cmd.OutOrStdout(), cfg, devlog.New(cmd.ErrOrStderr(), debug))
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file with listeners, virtual proxies, users, apps and reload tasks (defaults: the built-in ACME seed)")
	f.StringVar(&flags.CertDir, "cert-dir", "qliksim-certs", "directory of the Qlik-style certificate export (created when empty)")
	f.StringVar(&flags.ProxyListen, "proxy-listen", qliksim.DefaultProxyListen, "address of the proxy side (QSEoW's 443)")
	f.StringVar(&flags.QPSListen, "qps-listen", qliksim.DefaultQPSListen, "address of the QPS API (QSEoW's 4243, mutual TLS)")
	f.StringVar(&flags.AdminListen, "admin-listen", "", "address of the inspection and fault API (e.g. 127.0.0.1:4250; empty: off)")
	f.BoolVar(&flags.ProxyHTTP, "http", false, "serve the proxy side over plain HTTP (session cookies get the -HTTP suffix)")
	f.BoolVar(&flags.WebsocketCSRF, "websocket-csrf", false, "require the Nov-2024 qlik-csrf-token on Engine websockets on every virtual proxy")
	f.BoolVar(&debug, "debug", false, "log at debug level")
	cmd.AddCommand(newQliksimCertsCmd())
	return cmd
}

func runQliksim(ctx context.Context, out io.Writer, cfg qliksim.Config, log *zap.Logger) error {
	defer log.Sync()
	sim, err := qliksim.New(cfg, qliksim.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := sim.Start(); err != nil {
		return err
	}
	c := sim.Certs()
	fmt.Fprintf(out, "qliksim: proxy (443)  %s\n", sim.ProxyURL())
	fmt.Fprintf(out, "qliksim: QPS   (4243) %s  (client certificate required)\n", sim.QPSURL())
	if u := sim.AdminURL(); u != "" {
		fmt.Fprintf(out, "qliksim: admin        %s\n", u)
	}
	fmt.Fprintf(out, "qliksim: certificates %s\n  root.pem    %s\n  client.pem  %s\n  client_key.pem %s\n", c.Dir, c.Root, c.Client, c.ClientKey)
	fmt.Fprintf(out, "qliksim: ticket for ACME\\alice:\n  curl --cert %s --key %s --cacert %s -H 'X-Qlik-Xrfkey: 0123456789abcdef' -H 'Content-Type: application/json' -d '{\"UserDirectory\":\"ACME\",\"UserId\":\"alice\"}' '%s/qps/ticket?xrfkey=0123456789abcdef'\n",
		c.Client, c.ClientKey, c.Root, sim.QPSURL())
	<-ctx.Done()
	fmt.Fprintln(out, "qliksim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return sim.Shutdown(sctx)
}

func newQliksimCertsCmd() *cobra.Command {
	var (
		dir   string
		hosts []string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Write a Qlik-style certificate export (root, server and client certificates)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				c   qliksim.CertFiles
				err error
			)
			if force {
				c, err = qliksim.WriteCerts(dir, hosts)
			} else {
				c, err = qliksim.EnsureCerts(dir, hosts)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n%s\n%s\n%s\n", c.Root, c.Server, c.ServerKey, c.Client, c.ClientKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "qliksim-certs", "directory to write root.pem, server.pem, server_key.pem, client.pem and client_key.pem to")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "host names and IPs of the server certificate (default localhost, 127.0.0.1, ::1)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing export")
	return cmd
}
