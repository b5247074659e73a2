// Command sensegate-demo runs the demo in one process: the QSEoW
// simulator, a sample mashup, and sensegate in front of both with a
// development login (or, with --oidc, a development OpenID provider; with
// --spa, a single-page app signing in there itself). It is a development
// tool, not part of the sensegate binary; sensegate runs in it through the
// same path as `sensegate serve` (server.Run).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/examples/mashup"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/server"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/devlog"
	"github.com/sensegate/sensegate/tooling/devlogin"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// Set at link time: -ldflags "-X main.version=… -X main.commit=…", for
// sensegate_build_info.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newDemoCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sensegate-demo:", err)
		os.Exit(1)
	}
}

func newDemoCmd() *cobra.Command {
	var (
		listen   string
		dataDir  string
		simAdmin string
		csrf     bool
		csrfMode string
		dead     string
		debug    bool
		oidc     bool
		spaMode  bool
		origins  []string
		admin    string
	)
	cmd := &cobra.Command{
		Use:           "sensegate-demo",
		SilenceUsage:  true,
		SilenceErrors: true,
		Short:         "Run the demo: the QSEoW simulator, sensegate with a development login, and a sample mashup",
		Long: `Start, in one process, the QSEoW simulator on loopback, a sample mashup, and
sensegate in front of both on one origin, with a development login page where
you pick a user. Open the printed address in a browser.

With --oidc, sensegate signs users in with OpenID Connect instead, at a
development OpenID provider started alongside (devidp) that knows the
simulator's users (alice, bob, carol, dev; password "demo") and sends their
groups in the ID token.

With --spa, sensegate verifies access tokens (identity provider jwt) of a
single-page app it serves at /spa/: the page signs in at the development
OpenID provider itself (oidc-client-ts, code flow with PKCE) and trades its
token for sensegate's login cookie at /.sensegate/session.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := devlog.New(cmd.ErrOrStderr(), debug)
			defer log.Sync()
			return runDemo(cmd.Context(), cmd.OutOrStdout(), demoOptions{listen: listen, dataDir: dataDir, simAdmin: simAdmin, simCSRF: csrf, simDeadSocket: dead, csrfMode: csrfMode, oidc: oidc, spa: spaMode, allowedOrigins: origins, adminListen: admin}, log, nil)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of sensegate")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".demo", "directory for the simulator's certificates")
	cmd.Flags().StringVar(&simAdmin, "sim-admin-listen", "", "loopback address of the simulator's inspection and fault API (empty: off)")
	cmd.Flags().BoolVar(&csrf, "websocket-csrf", false, "make the simulator require Qlik's November 2024 websocket CSRF token")
	cmd.Flags().StringVar(&dead, "sim-dead-socket", "", `how the simulator answers an Engine websocket with a dead session cookie: its virtual proxies' dead_socket (must-authenticate, close, 500, 302, 401; empty: must-authenticate)`)
	cmd.Flags().StringVar(&csrfMode, "qlik-websocket-csrf", string(config.DefaultWebsocketCSRF), "sensegate's qlik.websocket_csrf (auto, on, off)")
	cmd.Flags().BoolVar(&oidc, "oidc", false, `sign in with OpenID Connect at a development identity provider started in process (the simulator's users, password "demo") instead of the development login page`)
	cmd.Flags().BoolVar(&spaMode, "spa", false, `serve a single-page app at /spa/ that signs in at a development identity provider itself and trades its access token for sensegate's login cookie (identity provider jwt with identity.jwt.session)`)
	cmd.Flags().BoolVar(&debug, "debug", false, "log at debug level")
	cmd.Flags().StringVar(&admin, "admin-listen", config.DefaultAdminListen, "address of sensegate's admin listener: /metrics, /healthz, /readyz (empty: off)")
	cmd.Flags().StringArrayVar(&origins, "allowed-origin", nil, "an origin added to server.allowed_origins, e.g. a mashup on another port (repeatable)")
	return cmd
}

// demoOptions are the demo command's flags.
type demoOptions struct {
	listen, dataDir, simAdmin string
	simCSRF                   bool
	// simDeadSocket is qliksim.VirtualProxy.DeadSocket for every virtual
	// proxy of the simulator ("" keeps its default).
	simDeadSocket string
	csrfMode      string
	oidc          bool
	// spa is --spa: startDemoSPA.
	spa bool
	// allowedOrigins are added to server.allowed_origins.
	allowedOrigins []string
	// adminListen is admin.listen ("" : no admin listener).
	adminListen string
}

// shutdownGrace bounds how long the simulator and the development OpenID
// provider wait for open requests when the demo stops.
const shutdownGrace = 10 * time.Second

// mashupReadHeaderTimeout bounds the request headers on the mashup's own
// web server, as sensegate bounds them on its listener.
const mashupReadHeaderTimeout = 10 * time.Second

// The demo's OpenID Connect setup (--oidc): every seeded user signs in at
// devidp with demoPassword, as sensegate's client demoClientID.
const (
	demoPassword = "demo"
	demoClientID = "sensegate-demo"
)

// runDemo starts the demo and blocks until ctx ends. ready, when not nil,
// receives sensegate's address once it listens.
func runDemo(ctx context.Context, out io.Writer, o demoOptions, log *zap.Logger, ready chan<- net.Addr) error {
	listen := o.listen
	if o.oidc && o.spa {
		return errors.New("--oidc and --spa: choose one")
	}
	simCfg := qliksim.DefaultConfig()
	simCfg.ProxyListen, simCfg.QPSListen, simCfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0", o.simAdmin
	simCfg.CertDir = filepath.Join(o.dataDir, "qlik-certs")
	simCfg.WebsocketCSRF = o.simCSRF
	switch o.simDeadSocket {
	case "", qliksim.DeadSocketMustAuthenticate, qliksim.DeadSocketClose, qliksim.DeadSocket500, qliksim.DeadSocket302, qliksim.DeadSocket401:
	default:
		return fmt.Errorf("--sim-dead-socket: %q is not a dead_socket variant (use must-authenticate, close, 500, 302 or 401)", o.simDeadSocket)
	}
	for i := range simCfg.VirtualProxies {
		simCfg.VirtualProxies[i].DeadSocket = o.simDeadSocket
	}
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
	msrv := &http.Server{Handler: http.FileServerFS(mashup.Files), ReadHeaderTimeout: mashupReadHeaderTimeout}
	go msrv.Serve(mln)
	defer msrv.Close()

	// sensegate's listener comes first: its port is in the public URL,
	// and so in the OIDC callback registered at the identity provider.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	// server.Run closes ln; this is for the returns before it runs.
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	c := config.Default()
	c.Server.Listen = ln.Addr().String()
	c.Server.RawPublicURL = "http://localhost:" + port
	c.Server.RawAllowedOrigins = append([]string{"http://127.0.0.1:" + port}, o.allowedOrigins...)
	if o.spa {
		// 127.0.0.1 is another site than localhost: the exchange's
		// cookie would have to be SameSite=None, which needs https.
		c.Server.RawAllowedOrigins = o.allowedOrigins
	}
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
	// As serve: metrics on the admin listener, and the audit log
	// (audit.enabled is on by default) on standard error.
	c.Admin.Listen = o.adminListen
	var idp *devidp.IDP
	if o.spa {
		var stopSPA func()
		if idp, stopSPA, err = startDemoSPA(c, simCfg.Users, log.Named("devidp")); err != nil {
			return err
		}
		defer stopSPA()
	}
	if o.oidc {
		if idp, err = startDemoIDP(c, simCfg.Users, log.Named("devidp")); err != nil {
			return err
		}
	}
	if idp != nil {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			idp.Close(sctx)
		}()
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	// Without --oidc or --spa, the development login replaces
	// identity.provider static; with them, sensegate builds its OIDC or
	// JWT provider from c as serve would.
	var provider identity.Provider
	if !o.oidc && !o.spa {
		var users []identity.User
		for _, u := range simCfg.Users {
			users = append(users, identity.User{Directory: u.Directory, ID: u.ID})
		}
		provider = devlogin.New(users, false)
	}

	addrs := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- server.Run(ctx, server.Options{
			Config: c, Listener: ln, Provider: provider, Logger: log.Named("sensegate"),
			Version: version, Commit: commit, Ready: addrs,
		})
	}()
	select {
	case err := <-errc:
		return err
	case a := <-addrs:
		// One write: readers (the e2e harness) take the first line as
		// the sign that the demo is up and expect the rest with it.
		var msg strings.Builder
		if idp != nil {
			open := "/"
			if o.spa {
				open = demoSPAPath
			}
			fmt.Fprintf(&msg, "\nsensegate demo: open %s%s in a browser and sign in at the development identity provider.\n", c.Server.PublicURL(), open)
			fmt.Fprintf(&msg, "  Identity provider (devidp): %s\n", idp.Issuer())
			fmt.Fprintf(&msg, "  Users: %s; password %q\n", strings.Join(usernames(demoIDPUsers(c.Qlik.UserDirectory, simCfg.Users)), ", "), demoPassword)
		} else {
			fmt.Fprintf(&msg, "\nsensegate demo: open %s/ in a browser and pick a user.\n", c.Server.PublicURL())
		}
		fmt.Fprintf(&msg, "  Qlik simulator: proxy %s, QPS %s (certificates in %s)\n", sim.ProxyURL(), sim.QPSURL(), simCfg.CertDir)
		if c.Admin.Listen != "" {
			fmt.Fprintf(&msg, "  Metrics: http://%s/metrics (audit entries are logged with audit: true)\n", c.Admin.Listen)
		}
		if u := sim.AdminURL(); u != "" {
			fmt.Fprintf(&msg, "  Simulator admin: %s\n", u)
		}
		fmt.Fprintf(&msg, "  Stop with Ctrl-C.\n\n")
		io.WriteString(out, msg.String())
		if ready != nil {
			ready <- a
		}
	case <-time.After(30 * time.Second):
		return errors.New("demo: sensegate did not start listening")
	}
	return <-errc
}

// startDemoIDP starts devidp with the simulator's users of sensegate's
// user directory (demoIDPUsers) and registers sensegate as a client at
// it; then it points c's identity at it: provider oidc, preferred_username
// as the Qlik user id and the groups claim as Group attributes.
func startDemoIDP(c *config.Config, simUsers []qliksim.User, log *zap.Logger) (*devidp.IDP, error) {
	users := demoIDPUsers(c.Qlik.UserDirectory, simUsers)
	public := strings.TrimSuffix(c.Server.RawPublicURL, "/")
	secret, key := make([]byte, 32), make([]byte, 32)
	rand.Read(secret)
	rand.Read(key)
	clientSecret := base64.RawURLEncoding.EncodeToString(secret)
	idp, err := devidp.Start(devidp.Config{
		Users: users,
		Clients: []devidp.Client{{
			ID: demoClientID, Secret: clientSecret,
			RedirectURIs:           []string{public + config.ReservedPath + "callback"},
			PostLogoutRedirectURIs: []string{public + "/"},
		}},
		// sensegate is at localhost: the IdP's cookies stay apart.
		Listen: "127.0.0.1:0",
		Notice: fmt.Sprintf("Demo users: %s. Password: %s.", strings.Join(usernames(users), ", "), demoPassword),
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: identity provider: %w", err)
	}
	c.Identity.Provider = config.ProviderOIDC
	c.Identity.OIDC.Issuer = idp.Issuer()
	c.Identity.OIDC.ClientID, c.Identity.OIDC.ClientSecret = demoClientID, clientSecret
	// A key of the demo's own, so that serve does not warn about it.
	c.Identity.OIDC.CookieSecrets = []string{base64.StdEncoding.EncodeToString(key)}
	c.Identity.Mapping.UserIDClaim = identity.DefaultUserIDClaim
	c.Identity.Mapping.GroupsClaim = identity.DefaultGroupsClaim
	return idp, nil
}

// demoIDPUsers returns the IdP accounts of the simulator's users in
// directory: username = Qlik user id, password demoPassword, groups =
// their seeded groups.
func demoIDPUsers(directory string, simUsers []qliksim.User) []devidp.User {
	var users []devidp.User
	for _, u := range simUsers {
		if strings.EqualFold(u.Directory, directory) {
			users = append(users, devidp.User{
				Username: u.ID, Password: demoPassword, Name: u.Name,
				Email: u.ID + "@acme.example", Groups: u.Groups,
			})
		}
	}
	return users
}

// usernames returns the users' usernames.
func usernames(users []devidp.User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Username
	}
	return names
}
