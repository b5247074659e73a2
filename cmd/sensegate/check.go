package main

import (
	"fmt"
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

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and report every problem",
		Long: `Load the configuration file with its SENSEGATE_* environment overrides and
validate it as sensegate would at startup, reading the certificate, key and CA
files it names. Prints "config OK: FILE", or every problem, one per line, on
standard error, each naming the key and the fix; the exit status is then 1.`,
		Args: cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file := configFile()
		_, err := config.Load(file)
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "config OK: %s\n", file)
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
