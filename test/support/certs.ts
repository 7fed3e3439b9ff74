// Certificates for TLS tests, made at test time with the openssl command: a CA, and
// server and client certificates it signs (or another CA signs, or expired, or for
// another name), each a PEM file in a temp dir the caller removes.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const opensslInstalled = spawnSync('openssl', ['version']).status === 0;

function openssl(args: string[], cwd: string): void {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
}

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface CertOptions {
  /** The subject's common name (etcd takes a client certificate's CN as its user name). */
  cn: string;
  /** subjectAltName entries, e.g. ["IP:127.0.0.1", "DNS:localhost"]. */
  san?: string[];
  /** Days valid; negative: already expired. */
  days?: number;
}

/** A CA in a temp dir, which signs certificates into the same dir. */
export class TestCa {
  private serial = 0;
  readonly cert: string;
  private readonly key: string;

  private constructor(
    readonly dir: string,
    readonly name: string,
  ) {
    this.cert = join(dir, `${name}.pem`);
    this.key = join(dir, `${name}.key`);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', this.key, '-out', this.cert, '-days', '2', '-subj', `/CN=${name}`], dir);
  }

  /** A new CA; `dir` defaults to a new temp dir (remove it with `remove()`). */
  static create(name = 'hailstone-test-ca', dir = mkdtempSync(join(tmpdir(), 'hailstone-certs-'))): TestCa {
    return new TestCa(dir, name);
  }

  /** A certificate this CA signs, for a server and a client alike. */
  issue(file: string, options: CertOptions): CertFiles {
    const cert = join(this.dir, `${file}.pem`);
    const key = join(this.dir, `${file}.key`);
    const csr = join(this.dir, `${file}.csr`);
    const ext = join(this.dir, `${file}.ext`);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${options.cn}`], this.dir);
    const lines = ['extendedKeyUsage=serverAuth,clientAuth', 'keyUsage=digitalSignature,keyEncipherment'];
    if (options.san !== undefined && options.san.length > 0) lines.push(`subjectAltName=${options.san.join(',')}`);
    writeFileSync(ext, `${lines.join('\n')}\n`);
    this.serial++;
    const serial = `${Date.now().toString(16)}${this.serial.toString(16).padStart(4, '0')}`;
    openssl(['x509', '-req', '-in', csr, '-CA', this.cert, '-CAkey', this.key, '-set_serial', `0x${serial}`, '-out', cert, '-days', String(options.days ?? 2), '-extfile', ext], this.dir);
    return { cert, key };
  }

  /** The CA's certificate as PEM. */
  pem(): Buffer {
    return readFileSync(this.cert);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
