// Per-registry settings, from `[registry."host:port"]` of the configuration file. The client
// gets them in RegistryClientOptions.settings; flags given on the command line win.
//
// Consumers: plainHttp/insecure here (client.ts), mirrors (hosts.ts), certDir (the TLS work:
// certs.d lookup for this host), authfile (the keychain work: which auth file to read for this
// host). The last two are carried, typed, for them; nothing here reads those files.
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
