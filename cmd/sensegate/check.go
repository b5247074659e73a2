package main

import (
	"context"
	"time"

	"fmt"
	"github.com/sensegate/sensegate/identity"
	"go.uber.org/zap"
	"os"

	"github.com/sensegate/sensegate/config"
	"github.com/spf13/cobra"
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

// logConfigWarnings logs what cfg, loaded from file, allows but is risky
// (config.Config.Warnings), one line each: serve at startup and on every
// reload, where check prints them.
func logConfigWarnings(log *zap.Logger, file string, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("risky configuration", zap.String("file", file), zap.String("warning", w.Error()))
	}
}

// checkConnect makes one QPS API call as serve would and reports.
func checkConnect(cmd *cobra.Command, cfg *config.Config) error {
	gw, err := newGateway(cfg, identity.NewStatic(identity.User{}), zap.NewNop())
	if err != nil {
		return err
	}
	defer gw.close()
	ctx, cancel := context.WithTimeout(cmd.Context(), cfg.Qlik.QPS.Timeout+5*time.Second)
	defer cancel()
	if err := gw.tickets.Ping(ctx); err != nil {
		return fmt.Errorf("qlik.qps.url %s: %w", cfg.Qlik.QPS.URL(), err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "QPS OK: %s (client certificate accepted, prefix %q)\n", cfg.Qlik.QPS.URL(), cfg.Qlik.Prefix)
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
exit status stays 0.`,
		Args: cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	connect := cmd.Flags().Bool("connect", false, "also call the QPS API with the client certificate (proves qlik.qps.*, qlik.ca and qlik.prefix)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file := configFile()
		cfg, err := config.Load(file)
		if err == nil {
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "config OK: %s\n", file)
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
