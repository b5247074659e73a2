package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/spf13/cobra"
)

// newHealthcheckCmd is `sensegate healthcheck`: a probe for container
// health checks (the distroless image has no shell and no curl). It GETs
// the admin listener's /healthz (/readyz with --ready) and exits 0 on
// 200, 1 otherwise.
func newHealthcheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a running sensegate's admin listener (exit 0 healthy, 1 not)",
		Long: `GET the admin listener's /healthz (or /readyz with --ready) and exit 0 when it
answers 200 OK, 1 otherwise. The address is admin.listen of the configuration
(file and SENSEGATE_* environment, as serve reads them; a wildcard host is
probed on loopback), or --url. For container HEALTHCHECKs: the image has no
shell and no curl.`,
		Args: cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	ready := cmd.Flags().Bool("ready", false, "probe /readyz (QPS and session store reachable) instead of /healthz")
	url := cmd.Flags().String("url", "", "URL to GET instead of the configuration's admin listener (e.g. http://127.0.0.1:9090/healthz)")
	timeout := cmd.Flags().Duration("timeout", 5*time.Second, "give up after this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		target := *url
		if target == "" {
			file := configFile()
			cfg, err := config.Load(file)
			if err != nil {
				return fmt.Errorf("healthcheck: %s: %w (or pass --url)", file, err)
			}
			path := admin.PathHealthz
			if *ready {
				path = admin.PathReadyz
			}
			if target, err = adminProbeURL(cfg.Admin.Listen, path); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), *timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthcheck: %s: %s: %s", target, resp.Status, body)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "healthy: %s\n", target)
		return nil
	}
	return cmd
}

// adminProbeURL is the http URL of path on the admin listener at listen
// (admin.listen); wildcard and empty hosts are probed on loopback.
func adminProbeURL(listen, path string) (string, error) {
	if listen == "" {
		return "", fmt.Errorf("healthcheck: admin.listen is empty (the admin listener is off): set it, or pass --url")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("healthcheck: admin.listen %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
