// Per-registry settings, from `[registry."host:port"]` of the configuration file. The client
// gets them in RegistryClientOptions.settings; flags given on the command line win.
//
// Consumers (all through src/cli/common.ts): plainHttp/insecure (client.ts), mirrors
// (hosts.ts), certDir (tls.ts certDirSettings, as --cert-dir), authfile (the keychain's
// authFile, as --authfile). Nothing here reads those files.
export interface RegistrySettings {
  /** Talk HTTP, not HTTPS, to this registry. */
  plainHttp?: boolean;
  /** HTTPS without certificate verification for this registry. */
  insecure?: boolean;
  /** Directory of this registry's CA certificates and client key pair (docker certs.d layout). */
  certDir?: string;
  /** Mirror URLs tried in order before the registry itself (pull and resolve). */
  mirrors?: string[];
  /** Auth file (Docker config.json / containers auth.json format) for this registry's credentials. */
  authfile?: string;
}
