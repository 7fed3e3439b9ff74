// When etcd answers but refuses: the TLS handshake fails (a CA that does not sign etcd's
// certificate, a certificate for another name or expired, no client certificate), the
// password is wrong, or the user may not touch the cluster's keys. Waiting cannot cure any
// of these, so a server refuses to start at once (COORDINATOR_REFUSED) with the cause in
// words and what to change — not after --etcd-wait-ms, and not as a gRPC message.

import { CoordinatorError } from './coordinator.js';
import { type EtcdOptions, claimsPrefix, clusterRoot } from './etcd.js';

/** What the refusal is about: the options given, and the cluster whose keys were asked for. */
export interface RefusalContext {
  etcd: EtcdOptions;
  cluster: string;
  /** "server" needs readwrite on hailstone/<cluster>/; "client" reads hailstone/<cluster>/claims/; "status" reads hailstone/<cluster>/. */
  role: 'server' | 'client' | 'status';
}

/** Why etcd refused, with what to do about it; undefined when the error is not a refusal. */
export function etcdRefusal(failure: unknown, context: RefusalContext): string | undefined {
  // The etcd client's own error, as the adapter received it.
  const error = failure instanceof CoordinatorError && failure.cause instanceof Error ? failure.cause : failure;
  if (!(error instanceof Error)) return undefined;
  const text = `${error.name} ${error.message}`;
  const { etcd } = context;
  const user = etcd.username === undefined ? undefined : JSON.stringify(etcd.username);
  if (/authentication failed|invalid user ID or password|EtcdAuthenticationFailedError/.test(text)) {
    return `etcd rejected the user name or password${user === undefined ? '' : ` of user ${user}`}: check --etcd-user and --etcd-password-file (or HAILSTONE_ETCD_PASSWORD)`;
  }
  if (/authentication is not enabled/.test(text)) return `etcd's authentication is not enabled, but a user was given: drop --etcd-user, or enable it in etcd`;
  if (/permission denied|EtcdPermissionDeniedError|user name is empty/.test(text)) {
    const who = user === undefined ? 'this client (the common name of its client certificate, or no user)' : `the etcd user ${user}`;
    const needs = {
      server: `readwrite on the prefix ${clusterRoot(context.cluster)}`,
      client: `read on the prefix ${claimsPrefix(context.cluster)}`,
      status: `read on the prefix ${clusterRoot(context.cluster)}`,
    }[context.role];
    return `etcd says permission denied: ${who} needs ${needs} (docs/fleet.md, "etcd authentication and least privilege")`;
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames/.test(text)) {
    const host = /Host: ([^ ]+?)\.? is not/.exec(text)?.[1] ?? /IP: ([^ ]+?) is not/.exec(text)?.[1];
    return `etcd's certificate does not name ${host ?? 'the host in --etcd'}: use an endpoint its certificate lists (subjectAltName), or reissue the certificate with that name`;
  }
  if (/alert certificate expired|alert number 45\b/.test(text)) return `etcd refused this client's certificate (--etcd-cert): it has expired; renew it`;
  if (/certificate has expired|CERT_HAS_EXPIRED/.test(text)) return `etcd's certificate has expired: renew etcd's server certificate`;
  if (/certificate is not yet valid|CERT_NOT_YET_VALID/.test(text)) return `etcd's certificate is not valid yet: check this machine's clock, or etcd's certificate`;
  if (/unable to verify the first certificate|unable to get local issuer certificate|self[- ]signed certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate signature failure/i.test(text)) {
    return etcd.ca === undefined
      ? `etcd's certificate is not signed by a CA this system trusts: give the CA that signs it with --etcd-ca (or ETCDCTL_CACERT)`
      : `etcd's certificate is not signed by the CA given (--etcd-ca): give the CA that signs etcd's certificates`;
  }
  if (/alert bad certificate|alert certificate required|alert unknown ca|alert certificate unknown|alert number (42|46|48|116)\b/.test(text)) {
    return etcd.cert === undefined
      ? `etcd wants a client certificate (it runs with --client-cert-auth): give --etcd-cert and --etcd-key`
      : `etcd refused this client's certificate (--etcd-cert): it must be signed by the CA in etcd's --trusted-ca-file`;
  }
  if (/wrong version number|packet length too long|WRONG_VERSION_NUMBER/.test(text)) return `etcd does not speak TLS at ${etcd.endpoints.join(',')}: use http://`;
  return undefined;
}
