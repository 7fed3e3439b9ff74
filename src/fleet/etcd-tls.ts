// TLS to etcd: where the CA, client certificate and key come from (PEM given as such, or
// a file path), checked before any connection so that a wrong path or a file that is not
// PEM is one clear error rather than a failed handshake.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { InvalidArgumentError, describe } from '../errors.js';

/** PEM text or bytes, or the path of a PEM file. */
export type PemSource = string | Uint8Array;

/** The TLS material given for etcd, by option name. */
export interface EtcdTlsOptions {
  /** CA certificate(s) that sign etcd's server certificate. Default with https://: the system's CAs. */
  ca?: PemSource;
  /** Client certificate (chain), for an etcd started with --client-cert-auth. Needs `key`. */
  cert?: PemSource;
  /** The client certificate's private key. */
  key?: PemSource;
}

/** The material read: what gRPC's TLS credentials take. */
export interface EtcdTlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
/** What each source must hold: certificates for the CA and the client certificate, a private key for the key. */
const HOLDS: Record<string, { pattern: RegExp; what: string }> = {
  'etcd.ca': { pattern: /-----BEGIN CERTIFICATE-----/, what: 'no certificate (-----BEGIN CERTIFICATE-----)' },
  'etcd.cert': { pattern: /-----BEGIN CERTIFICATE-----/, what: 'no certificate (-----BEGIN CERTIFICATE-----)' },
  'etcd.key': { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, what: 'no private key (-----BEGIN … PRIVATE KEY-----)' },
};

/** Whether any TLS material was given. */
export function tlsGiven(options: EtcdTlsOptions): boolean {
  return options.ca !== undefined || options.cert !== undefined || options.key !== undefined;
}

/** The file a source names, or undefined when it is PEM itself. */
export function pemPath(source: PemSource | undefined): string | undefined {
  return typeof source === 'string' && !PEM.test(source) ? source : undefined;
}

/** Reads one source: PEM given as such, or read from its file. */
export function readPem(argument: string, source: PemSource): Buffer {
  let bytes: Buffer;
  const path = pemPath(source);
  if (path !== undefined) {
    try {
      bytes = readFileSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new InvalidArgumentError(argument, `cannot read ${describe(path)} (${code ?? (error as Error).message}): give the path of a PEM file`);
    }
  } else if (typeof source === 'string') {
    bytes = Buffer.from(source);
  } else if (source instanceof Uint8Array) {
    bytes = Buffer.from(source);
  } else {
    throw new InvalidArgumentError(argument, `must be PEM (a string or a Buffer) or the path of a PEM file, got ${describe(source)}`);
  }
  const text = bytes.toString('latin1');
  const named = path === undefined ? 'the value given' : describe(path);
  if (!PEM.test(text)) throw new InvalidArgumentError(argument, `${named} is not PEM (no "-----BEGIN" line)`);
  const holds = HOLDS[argument];
  if (holds !== undefined && !holds.pattern.test(text)) throw new InvalidArgumentError(argument, `${named} holds ${holds.what}: is it the right file?`);
  return bytes;
}

/** Reads and checks every source given: a certificate needs its key and the other way round. */
export function readTlsMaterial(options: EtcdTlsOptions): EtcdTlsMaterial {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    const missing = options.cert === undefined ? 'etcd.cert' : 'etcd.key';
    throw new InvalidArgumentError(missing, 'a client certificate needs both its certificate and its key');
  }
  const material: EtcdTlsMaterial = {
    ...(options.ca === undefined ? {} : { ca: readPem('etcd.ca', options.ca) }),
    ...(options.cert === undefined ? {} : { cert: readPem('etcd.cert', options.cert) }),
    ...(options.key === undefined ? {} : { key: readPem('etcd.key', options.key) }),
  };
  // What OpenSSL refuses is said here, naming the option, not as its code at a handshake.
  if (material.ca !== undefined) loads('etcd.ca', { ca: material.ca }, 'its certificates do not load');
  if (material.cert !== undefined) loads('etcd.key', { cert: material.cert, key: material.key }, 'the key does not belong to the certificate (give the two issued together), or they do not load');
  return material;
}

function loads(argument: string, context: { ca?: Buffer; cert?: Buffer; key?: Buffer }, what: string): void {
  try {
    createSecureContext(context);
  } catch (error) {
    throw new InvalidArgumentError(argument, `${what}: ${(error as Error).message}`);
  }
}
