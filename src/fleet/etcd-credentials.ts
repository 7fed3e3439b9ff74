// TLS credentials for etcd that follow their files: cert-manager and Vault rewrite a
// certificate and key in place before the old ones expire, and an etcd restarted with a new
// server certificate (perhaps from a new CA) must still be reachable — without restarting
// the server, which would give up its node id. Every new connection to etcd uses the files
// as they were last read; the files are read once a second and taken again when they
// change, and a set that does not load (a certificate written before its key) is kept out
// until it does. Connections already open keep the certificate they were made with.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { type EtcdTlsMaterial, type EtcdTlsOptions, pemPath, readTlsMaterial } from './etcd-tls.js';

/** How often the files are read to see whether they changed. */
export const TLS_FILES_CHECK_MS = 1000;

type CaUpdate = { caCertificate: Buffer | undefined } | null;
type IdentityUpdate = { certificate: Buffer; privateKey: Buffer } | null;

/** gRPC's CertificateProvider, over the TLS options' files (or fixed PEM). */
export class RotatingTlsFiles {
  private material: EtcdTlsMaterial;
  private stamp: string;
  private readonly caListeners = new Set<(update: CaUpdate) => void>();
  private readonly identityListeners = new Set<(update: IdentityUpdate) => void>();
  private timer: NodeJS.Timeout | undefined;
  /** The stamp of a set that did not load, told once. */
  private failedStamp: string | undefined;

  constructor(
    private readonly options: EtcdTlsOptions,
    private readonly onChange: (event: { ok: boolean; message: string }) => void = () => undefined,
  ) {
    this.material = readTlsMaterial(options);
    this.stamp = this.stampNow();
  }

  /** The material as last read. */
  get current(): EtcdTlsMaterial {
    return this.material;
  }

  /** Whether any of the material comes from a file (else it never changes). */
  get watchesFiles(): boolean {
    return this.paths().length > 0;
  }

  /**
   * Reads the files once a second from now until close(). Not only while gRPC listens: when
   * every connection has failed (etcd's certificate refused, say, and the server fenced),
   * gRPC lets go of its listeners, and the fix an operator writes to the files must still be
   * read, for the next connection to take it.
   */
  follow(): void {
    if (this.timer !== undefined || !this.watchesFiles) return;
    this.timer = setInterval(() => this.check(), TLS_FILES_CHECK_MS);
    // Looking at files is no reason to stay alive.
    this.timer.unref();
  }

  addCaCertificateListener(listener: (update: CaUpdate) => void): void {
    this.caListeners.add(listener);
    this.follow();
    process.nextTick(listener, this.caUpdate());
  }

  removeCaCertificateListener(listener: (update: CaUpdate) => void): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: (update: IdentityUpdate) => void): void {
    this.identityListeners.add(listener);
    this.follow();
    process.nextTick(listener, this.identityUpdate());
  }

  removeIdentityCertificateListener(listener: (update: IdentityUpdate) => void): void {
    this.identityListeners.delete(listener);
  }

  /** Reads the files again if they changed since the last read; true when new material was taken. */
  check(): boolean {
    const stamp = this.stampNow();
    if (stamp === this.stamp || stamp === this.failedStamp) return false;
    let material: EtcdTlsMaterial;
    try {
      // A certificate and a key that do not belong together fail here (readTlsMaterial loads
      // them as OpenSSL would), not at a handshake.
      material = readTlsMaterial(this.options);
    } catch (error) {
      // Perhaps half written (the certificate before its key): tried again when they change.
      this.failedStamp = stamp;
      this.onChange({ ok: false, message: `etcd TLS files changed but do not load (${(error as Error).message}); new connections keep the previous ones` });
      return false;
    }
    this.material = material;
    this.stamp = stamp;
    this.failedStamp = undefined;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
    this.onChange({ ok: true, message: `etcd TLS files changed and were read again (${this.paths().join(', ')}); new connections to etcd use them` });
    return true;
  }

  /** Stops looking at the files. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private caUpdate(): CaUpdate {
    return { caCertificate: this.material.ca };
  }

  private identityUpdate(): IdentityUpdate {
    const { cert, key } = this.material;
    return cert === undefined || key === undefined ? null : { certificate: cert, privateKey: key };
  }

  private paths(): string[] {
    return [this.options.ca, this.options.cert, this.options.key].map(pemPath).filter((p): p is string => p !== undefined);
  }

  /**
   * What the files hold now, as a digest: a rewrite in place or a replacement (renamed over,
   * as a Kubernetes Secret's update is) changes it even within one timestamp tick. The
   * files are a few KB: reading them once a second costs nothing worth counting.
   */
  private stampNow(): string {
    const hash = createHash('sha256');
    for (const path of this.paths()) {
      try {
        hash.update(readFileSync(path));
      } catch {
        hash.update('missing');
      }
      hash.update('\0');
    }
    return hash.digest('hex');
  }
}

/**
 * gRPC channel credentials over these files, from the gRPC module etcd's client uses.
 * Without a CA the system's CAs verify etcd.
 */
export function rotatingCredentials(files: RotatingTlsFiles, hasIdentity: boolean): ChannelCredentials {
  const etcdRequire = createRequire(createRequire(import.meta.url).resolve('etcd3'));
  const grpc = etcdRequire('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
  const provider = files as unknown as Parameters<typeof grpc.experimental.createCertificateProviderChannelCredentials>[0];
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, hasIdentity ? provider : null);
}
