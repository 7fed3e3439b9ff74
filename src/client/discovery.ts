// How a client finds its servers when they are not listed up front: a source that reports
// the whole list whenever it changes (fleet mode's lives in src/fleet/discovery.ts and reads
// the claims in etcd).

export interface ServerDiscovery {
  /** Resolves once the first list was reported (rejects if it cannot be read). */
  readonly ready: Promise<void>;
  /**
   * Why the source refuses this client (credentials, permissions), if that is what `error`
   * says: the client then fails with COORDINATOR_REFUSED instead of UNAVAILABLE.
   */
  refusal?(error: unknown): string | undefined;
  /** What an empty list means, for the error a caller gets: where the source looked, and where servers are instead. */
  describeEmpty?(): Promise<string>;
  /**
   * Reads the list again now, not only from the source's change stream: asked when the
   * client has no server to ask, so a stream that stalled (an etcd restart that forgot every
   * token, under load) cannot leave it blind. Rate-limited by the source.
   */
  refresh?(): void;
  close(): Promise<void>;
}

/** Starts a discovery; `onChange` gets every server ("host:port") each time the list changes. */
export type DiscoverServers = (onChange: (servers: string[]) => void) => ServerDiscovery;
