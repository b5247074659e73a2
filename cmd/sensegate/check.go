package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/gateway"
	"github.com/sensegate/sensegate/identity"
)

const (
	// defaultConfigFile is the configuration file used when neither
	// --config nor $SENSEGATE_CONFIG names one.
	defaultConfigFile = "/etc/sensegate/sensegate.yaml"
	// configFileEnv names the configuration file when --config is not given.
	configFileEnv = "SENSEGATE_CONFIG"
)

// addConfigFlag registers --config on cmd. The returned function gives the
// file to load: --config when given, else $SENSEGATE_CONFIG when set, else
// defaultConfigFile.
func addConfigFlag(cmd *cobra.Command) func() string {
	var file string
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "YAML configuration file (or $"+configFileEnv+")")
	return func() string {
		if cmd.Flags().Changed("config") {
			return file
		}
		if env := os.Getenv(configFileEnv); env != "" {
			return env
		}
		return file
	}
}

// checkConnect builds sensegate as serve would (gateway.New: the identity
// provider with its discovery or keys, the session store with its Redis
// connection, the QPS clients) and makes one QPS API call to every Qlik
// node, reporting each: with qlik.nodes, a node that is down fails the
// check even when another answers.
func checkConnect(cmd *cobra.Command, cfg *config.Config) error {
	g, err := buildGateway(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Fprintf(cmd.OutOrStdout(), "sensegate OK: identity provider %s, store %s\n", cfg.Identity.Provider, cfg.Store.Type)
	q := cfg.Qlik
	var errs []error
	for i, n := range g.QPSNodes() {
		key := "qlik.qps.url"
		if len(q.Nodes) > 0 {
			key = fmt.Sprintf("qlik.nodes[%d].qps_url", i)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), q.QPS.Timeout+5*time.Second)
		err := n.Client.Ping(ctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", key, n.URLs.QPS, err))
			continue
		}
		fmt.Fprintf(cmd.OutOrStdout(), "QPS OK: %s (client certificate accepted, prefix %q)\n", n.URLs.QPS, q.Prefix)
	}
	return errors.Join(errs...)
}

// buildGateway builds the gateway serve would run from cfg, for check
// --connect; its failure names the key to fix.
func buildGateway(ctx context.Context, cfg *config.Config) (*gateway.Gateway, error) {
	g, err := gateway.New(ctx, cfg, gateway.Deps{Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("building sensegate as serve would: %w", err)
	}
	return g, nil
}

// checkConnectAs is check --connect --as: the preflight of a real login
// (preflight).
func checkConnectAs(cmd *cobra.Command, cfg *config.Config, as string) error {
	u, err := identity.ParseUser(as, cfg.Qlik.UserDirectory)
	if err != nil {
		return fmt.Errorf("--as: %w (write DIRECTORY\\id)", err)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*cfg.Qlik.QPS.Timeout+preflightEngineTimeout+10*time.Second)
	defer cancel()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "preflight of a login as %s:\n", u)
	if err := preflight(ctx, out, cfg, u); err != nil {
		return err
	}
	fmt.Fprintf(out, "login OK: %s can use Qlik through sensegate\n", u)
	return nil
}

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and report every problem",
		Long: `Load the configuration file with its SENSEGATE_* environment overrides and
validate it as sensegate would at startup, reading the certificate, key and CA
files it names. Prints "config OK: FILE", or every problem, one per line, on
standard error, each naming the key and the fix; the exit status is then 1.
What is allowed but risky (trusted_proxies broader than a /24 or a /64) is
printed on standard error as "warning: ..." lines before "config OK"; the
exit status stays 0.

--connect also builds sensegate as serve would (the identity provider, with
OIDC discovery or the JWKS; the session store, with its Redis connection; the
QPS clients) and calls the QPS API of every node with the client
certificate. With
--as 'DIRECTORY\user' it makes a real login as that user, as serve would,
and prints each step: a ticket from QPS; its redemption on qlik.url (the
session cookie name is checked); GET /qps/csrftoken (websocket CSRF token
supported or not); an Engine websocket to /app/engineData with
qlik.origin, the session cookie and the token; Qlik's
OnAuthenticationInformation (as that user, not mustAuthenticate) and
OnConnected. The session is then ended at QPS, so the check leaves
nothing behind (it holds one of the user's five parallel sessions while
it runs). The first step
that fails is printed with its fix: a wrong qlik.session_cookie, a host
allow list without qlik.origin's host (403), an untrusted certificate,
a wrong qlik.prefix, mustAuthenticate. With qlik.nodes every node is
checked.`,
		Args: cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	connect := cmd.Flags().Bool("connect", false, "also build sensegate as serve would (identity provider, store) and call the QPS API with the client certificate (proves qlik.qps.*, qlik.ca and qlik.prefix)")
	as := cmd.Flags().String("as", "", `with --connect: log in as this Qlik user ('DIRECTORY\id') and open an Engine websocket, then end the session`)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *as != "" && !*connect {
			return errors.New("--as needs --connect")
		}
		file := configFile()
		cfg, err := config.Load(file)
		if err == nil {
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "config OK: %s\n", file)
			if *connect && *as != "" {
				return checkConnectAs(cmd, cfg, *as)
			}
			if *connect {
				return checkConnect(cmd, cfg)
			}
			return nil
		}
		joined, ok := err.(interface{ Unwrap() []error })
		if !ok {
			return err // the file cannot be read or parsed
		}
		probs := joined.Unwrap()
		for _, p := range probs {
			fmt.Fprintln(cmd.ErrOrStderr(), p)
		}
		if len(probs) == 1 {
			return fmt.Errorf("%s: 1 problem", file)
		}
		return fmt.Errorf("%s: %d problems", file, len(probs))
	}
	return cmd
}
