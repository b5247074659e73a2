package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/examples/mashup"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qliksim"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

func newDemoCmd() *cobra.Command {
	var (
		listen   string
		dataDir  string
		simAdmin string
		csrf     bool
		csrfMode string
		debug    bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo: the QSEoW simulator, sensegate with a development login, and a sample mashup",
		Long: `Start, in one process, the QSEoW simulator on loopback, a sample mashup, and
sensegate in front of both on one origin, with a development login page where
you pick a user. Open the printed address in a browser.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(cmd.ErrOrStderr(), debug)
			defer log.Sync()
			return runDemo(cmd.Context(), cmd.OutOrStdout(), demoOptions{listen: listen, dataDir: dataDir, simAdmin: simAdmin, simCSRF: csrf, csrfMode: csrfMode}, log, nil)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of sensegate")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".demo", "directory for the simulator's certificates")
	cmd.Flags().StringVar(&simAdmin, "sim-admin-listen", "", "loopback address of the simulator's inspection and fault API (empty: off)")
	cmd.Flags().BoolVar(&csrf, "websocket-csrf", false, "make the simulator require Qlik's November 2024 websocket CSRF token")
	cmd.Flags().StringVar(&csrfMode, "qlik-websocket-csrf", string(config.DefaultWebsocketCSRF), "sensegate's qlik.websocket_csrf (auto, on, off)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log at debug level")
	return cmd
}

// demoOptions are the demo command's flags.
type demoOptions struct {
	listen, dataDir, simAdmin string
	simCSRF                   bool
	csrfMode                  string
}

// runDemo starts the demo and blocks until ctx ends. ready, when not nil,
// receives sensegate's address once it listens.
func runDemo(ctx context.Context, out io.Writer, o demoOptions, log *zap.Logger, ready chan<- net.Addr) error {
	listen := o.listen
	simCfg := qliksim.DefaultConfig()
	simCfg.ProxyListen, simCfg.QPSListen, simCfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", o.simAdmin
	simCfg.CertDir = filepath.Join(o.dataDir, "qlik-certs")
	simCfg.WebsocketCSRF = o.simCSRF
	sim, err := qliksim.New(simCfg, qliksim.Options{Logger: log.Named("qliksim")})
	if err != nil {
		return err
	}
	if err := sim.Start(); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		sim.Shutdown(sctx)
	}()

	// The mashup's own web server, as a customer would run it.
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	msrv := &http.Server{Handler: http.FileServerFS(mashup.Files), ReadHeaderTimeout: readHeaderTimeout}
	go msrv.Serve(mln)
	defer msrv.Close()

	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	c := config.Default()
	c.Server.Listen = listen
	c.Server.RawPublicURL = "http://localhost:" + port
	c.Server.RawAllowedOrigins = []string{"http://127.0.0.1:" + port}
	c.Qlik.RawURL = sim.ProxyURL()
	c.Qlik.UserDirectory = "ACME"
	c.Qlik.CA = sim.Certs().Root
	c.Qlik.QPS.RawURL = sim.QPSURL()
	c.Qlik.QPS.ClientCert, c.Qlik.QPS.ClientKey = sim.Certs().Client, sim.Certs().ClientKey
	c.Identity.Provider = config.ProviderStatic // replaced below by the development login
	c.Identity.Static.User = `ACME\dev`
	c.Routes = []config.Route{{Path: "/", Upstream: "http://" + mln.Addr().String()}}
	c.Log.Format = config.LogFormatConsole
	if o.csrfMode != "" {
		c.Qlik.WebsocketCSRF = config.CSRFMode(o.csrfMode)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	var users []identity.User
	for _, u := range simCfg.Users {
		users = append(users, identity.User{Directory: u.Directory, ID: u.ID})
	}
	gw, err := newGateway(c, identity.NewDevLogin(users, false), log.Named("sensegate"))
	if err != nil {
		return err
	}
	defer gw.close()

	addrs := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, c.Server, gw.handler, addrs, log.Named("sensegate")) }()
	select {
	case err := <-errc:
		return err
	case a := <-addrs:
		fmt.Fprintf(out, "\nsensegate demo: open %s/ in a browser and pick a user.\n", c.Server.PublicURL())
		fmt.Fprintf(out, "  Qlik simulator: proxy %s, QPS %s (certificates in %s)\n", sim.ProxyURL(), sim.QPSURL(), simCfg.CertDir)
		if u := sim.AdminURL(); u != "" {
			fmt.Fprintf(out, "  Simulator admin: %s\n", u)
		}
		fmt.Fprintf(out, "  Stop with Ctrl-C.\n\n")
		if ready != nil {
			ready <- a
		}
	case <-time.After(30 * time.Second):
		return errors.New("demo: sensegate did not start listening")
	}
	return <-errc
}
