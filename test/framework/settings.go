package framework

// ManagerSettings are a value other than the default for every flag ("--name") and
// environment variable ("NAME") of the manager: the settings tests set them all and check
// each one reaches what uses it. A test that needs a live value (a free port, a directory
// with certificates, the cluster's issuer) replaces it; the tests fail when a setting has
// no value here, so a new setting cannot go unchecked.
func ManagerSettings() map[string]string {
	return map[string]string{
		"--namespace":                  "settings-ns",
		"POD_NAMESPACE":                "settings-pod-ns",
		"--kubeconfig":                 "/settings/kubeconfig",
		"KUBECONFIG":                   "/settings/kubeconfig-from-env",
		"--metrics-bind-address":       "127.0.0.1:18443",
		"--metrics-secure":             "false",
		"--health-probe-bind-address":  "127.0.0.1:18081",
		"--pprof-bind-address":         "127.0.0.1:16060",
		"--leader-elect":               "true",
		"--zap-devel":                  "true",
		"--zap-encoder":                "console",
		"--zap-log-level":              "debug",
		"--zap-stacktrace-level":       "info",
		"--zap-time-encoding":          "rfc3339",
		"CLERK_JWT_KEY":                "settings-jwt-key",
		"CLERK_SECRET_KEY":             "sk_test_settings",
		"--clerk-api-url":              "http://127.0.0.1:1/settings-clerk",
		"--authorized-parties":         "https://app.example.com,https://admin.example.com",
		"--service-account-issuer":     "https://settings.example.com",
		"--service-account-audience":   "settings-audience,credits.gitread.dev",
		"--api-bind-address":           "127.0.0.1:18080",
		"--api-cert-dir":               "/settings/tls",
		"--api-request-timeout":        "7s",
		"--allow-user-writes":          "true",
		"--cors-allowed-origins":       "https://app.example.com",
		"--user-rate-limit":            "3.5",
		"--service-account-rate-limit": "4",
		"--reservation-ttl":            "3s",
		"--grant-key-retention":        "48h",
		"--low-balance-threshold":      "5",
		"--controller-workers":         "3",
		"STRIPE_WEBHOOK_SECRET":        "whsec_settings",
		"--price-per-credit-cents":     "100",
		"--checkout-currency":          "eur",
	}
}

// SettingsArgs splits settings into command-line arguments and environment variables, as
// the manager reads them (an environment variable also named by a flag is left out when
// the flag is given, as the flag wins: both are checked by their own test).
func SettingsArgs(settings map[string]string) (args []string, env map[string]string) {
	env = map[string]string{}
	for name, value := range settings {
		if len(name) > 2 && name[:2] == "--" {
			args = append(args, name+"="+value)
		} else {
			env[name] = value
		}
	}
	return args, env
}
