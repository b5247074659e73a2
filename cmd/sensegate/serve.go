package main

import (
	"os"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/server"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authenticating reverse proxy in front of Qlik Sense",
		Args:  cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file := configFile()
		cfg, err := config.Load(file)
		if err != nil {
			return err
		}
		log, level, err := server.NewLogger(cfg.Log)
		if err != nil {
			return err
		}
		defer log.Sync()
		tuneRuntime(os.LookupEnv, log)
		// The file is reloaded on SIGHUP and when it changes.
		return server.Run(cmd.Context(), server.Options{
			Config: cfg, File: file, Logger: log, Level: level, Version: version, Commit: commit,
		})
	}
	return cmd
}
