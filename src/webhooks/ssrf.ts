/**
 * Server-side request forgery guard for outgoing webhook deliveries.
 *
 * Exported signatures:
 *   type Refusal = string;
 *   function refuseAddress(address: string): Refusal | undefined;
 *   function checkWebhookUrl(url: string, options: { allowPrivate: boolean; resolve?: (host: string) => Promise<string[]> }):
 *     Promise<Refusal | undefined>;
 *   function guardedLookup(options: { allowPrivate: boolean; resolve?: (host: string) => Promise<string[]> }): net.LookupFunction;
 *   function refuseLiteralHost(url: URL, allowPrivate: boolean): Refusal | undefined;
 * `resolve` returns every address of a host (IPv4 or IPv6 text) and rejects, or returns [], when there is none; it defaults to
 * `dns.promises.lookup(host, { all: true, verbatim: true })`.
 *
 * Two checks, because a URL checked when it is saved can point elsewhere when it is delivered (DNS rebinding, or simply a
 * record that changed): checkWebhookUrl gives the user a 400 up front, while guardedLookup and refuseLiteralHost stand between
 * the delivery and the socket, checking the very address the connection is about to use.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup as dnsLookupAll } from 'node:dns/promises';
import { isIP, isIPv4, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Why a URL or an address is refused, or undefined when it is allowed. Messages are human sentences used in 400 problem details,
 * e.g. "the host 127.0.0.1 is a loopback address". */
export type Refusal = string;

type Resolver = (host: string) => Promise<string[]>;
type GuardOptions = { allowPrivate: boolean; resolve?: Resolver };

/** The error code guardedLookup fails with, so a delivery can tell a refusal from a network failure. */
const BLOCKED = 'EWEBHOOKBLOCKED';

// Well-known cloud metadata services (AWS/GCP/Azure IPv4 and IPv6, AWS ECS task metadata, Alibaba): already refused by their
// range, but naming them makes the refusal self-explanatory.
const METADATA = new Set(['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200']);

// ipaddr.js files 198.18/15 under 'reserved'; the benchmarking range is common in lab networks, so it gets its own name.
const BENCHMARKING_V4 = ipaddr.IPv4.parseCIDR('198.18.0.0/15');
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const IPV4_COMPATIBLE = ipaddr.IPv6.parseCIDR('::/96');
const GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');
// ipaddr.js silently rewrites the dotted IPv4-compatible spelling ::a.b.c.d into the IPv4-mapped ::ffff:a.b.c.d, so it must be
// recognised from the text before parsing, or ::8.8.8.8 and ::808:808 (the same address) would be judged differently.
const DOTTED_IPV4_COMPATIBLE = /^::\d{1,3}(\.\d{1,3}){3}(%.*)?$/;

const PHRASES: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'a broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a carrier-grade NAT address',
  private: 'a private address',
  reserved: 'a reserved address',
  benchmarking: 'a benchmarking address',
  uniqueLocal: 'a unique-local address',
  deprecatedSiteLocal: 'a site-local address',
  discard: 'a discard-only address',
  teredo: 'a Teredo tunnel address',
};

function label(range: string, ip: ipaddr.IPv4 | ipaddr.IPv6): string {
  const phrase = PHRASES[range] ?? `a special-purpose address (${range})`;
  return METADATA.has(ip.toString()) ? `${phrase} (a cloud metadata service)` : phrase;
}

function ipv4Phrase(ip: ipaddr.IPv4): string | undefined {
  if (ip.match(BENCHMARKING_V4)) return label('benchmarking', ip);
  const range = ip.range();
  return range === 'unicast' ? undefined : label(range, ip);
}

/** The phrase for an IPv6 address carrying an IPv4 address in 4 of its bytes: refused exactly when that IPv4 address is. */
function embedding(kind: string, ip: ipaddr.IPv6, offset: number): string | undefined {
  const v4 = new ipaddr.IPv4(ip.toByteArray().slice(offset, offset + 4));
  const phrase = ipv4Phrase(v4);
  return phrase === undefined ? undefined : `${kind} embedding ${v4.toString()}, ${phrase}`;
}

function ipv6Phrase(ip: ipaddr.IPv6, dottedCompatible: boolean): string | undefined {
  const range = ip.range();
  // IPv4-compatible addresses (::a.b.c.d) are deprecated since RFC 4291 and lie outside 2000::/3: refused even with a public
  // IPv4 inside, but the message names the embedded address when that alone would be refused.
  if (dottedCompatible || (range === 'unicast' && ip.match(IPV4_COMPATIBLE))) {
    return embedding('an IPv4-compatible IPv6 address', ip, 12) ?? 'a deprecated IPv4-compatible IPv6 address';
  }
  // A dual-stack socket connects to the embedded IPv4 address (or a translator does): judge that one.
  if (range === 'ipv4Mapped') return embedding('an IPv4-mapped IPv6 address', ip, 12);
  if (range === 'rfc6145') return embedding('an IPv4-translated IPv6 address', ip, 12);
  if (range === 'rfc6052') {
    // The local-use prefix 64:ff9b:1::/48 (RFC 8215) belongs to a private translator that may lead anywhere inside.
    return ip.match(NAT64_WELL_KNOWN) ? embedding('a NAT64 address', ip, 12) : 'a local-use NAT64 address';
  }
  if (range === '6to4') return embedding('a 6to4 address', ip, 2);
  if (range !== 'unicast') return label(range, ip);
  // Everything allocated for global unicast lies in 2000::/3; the rest is unassigned, so nothing legitimate lives there.
  return ip.match(GLOBAL_UNICAST) ? undefined : 'not a global unicast address';
}

/** What is wrong with an address ("a loopback address"), or undefined when it is a global unicast address. */
function addressPhrase(address: string): string | undefined {
  // net.isIP is strict (dotted decimal without leading zeros, RFC 4291 text), while ipaddr.js alone would also accept octal,
  // hex and single-number IPv4 spellings, which parsers disagree on.
  if (isIP(address) === 0) return 'not a valid IP address';
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address);
  } catch {
    return 'not a valid IP address';
  }
  return ip instanceof ipaddr.IPv4 ? ipv4Phrase(ip) : ipv6Phrase(ip, DOTTED_IPV4_COMPATIBLE.test(address));
}

/** Classifies one IP address (v4 or v6 text): a refusal unless it is a global unicast address; unparseable text is refused. */
export function refuseAddress(address: string): Refusal | undefined {
  const phrase = addressPhrase(address);
  return phrase === undefined ? undefined : `the host ${address} is ${phrase}`;
}

/** The address of a URL whose host is a literal IP, without the brackets of IPv6; undefined for a host name. */
function literalAddress(url: URL): string | undefined {
  const host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) return host.slice(1, -1);
  // The WHATWG parser has already turned every IPv4 spelling of special schemes (2130706433, 0177.0.0.1, 0x7f.1, 127.1) into
  // dotted decimal, and a host whose last label is numeric is either such an address or a parse error.
  return isIPv4(host) ? host : undefined;
}

/** How long a URL check waits for the host's addresses. */
const RESOLVE_TIMEOUT_MS = 3000;

async function resolveAll(host: string): Promise<string[]> {
  const answers = await dnsLookupAll(host, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
}

/** Checks a webhook URL before it is saved: http: or https:, no credentials, a host, and (unless allowPrivate) every address
 * of that host a global unicast one. A host that does not resolve is refused too: nothing could be delivered to it. */
export async function checkWebhookUrl(url: string, options: GuardOptions): Promise<Refusal | undefined> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'the URL is not a valid absolute URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return `the scheme ${parsed.protocol} is not allowed (only http: and https:)`;
  }
  // Credentials would be sent to whoever answers, and are kept in plain text with the webhook: the signature authenticates.
  if (parsed.username !== '' || parsed.password !== '') return 'the URL must not contain credentials (user:password@)';
  if (parsed.hostname === '') return 'the URL has no host';
  if (options.allowPrivate) return undefined;
  const literal = literalAddress(parsed);
  if (literal !== undefined) return refuseAddress(literal);

  const host = parsed.hostname;
  let addresses: string[];
  let timer: NodeJS.Timeout | undefined;
  try {
    // A resolver that does not answer would hold the request (and a libuv thread) for its own timeouts, several
    // times 5 s: the check gives up sooner, and says so.
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('late')), RESOLVE_TIMEOUT_MS);
    });
    addresses = await Promise.race([(options.resolve ?? resolveAll)(host), late]);
  } catch (error) {
    return error instanceof Error && error.message === 'late'
      ? `the host ${host} did not resolve within ${RESOLVE_TIMEOUT_MS / 1000} s`
      : `the host ${host} does not resolve`;
  } finally {
    clearTimeout(timer);
  }
  if (addresses.length === 0) return `the host ${host} does not resolve`;
  // ANY refused address refuses the host: a name answering both public and internal addresses is a rebinding setup.
  for (const address of addresses) {
    const phrase = addressPhrase(address);
    if (phrase !== undefined) return `the host ${host} resolves to ${address}, ${phrase}`;
  }
  return undefined;
}

function lookupError(message: string, code: string, hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, hostname });
}

function wantedFamily(family: LookupOptions['family']): 0 | 4 | 6 {
  if (family === 4 || family === 'IPv4') return 4;
  if (family === 6 || family === 'IPv6') return 6;
  return 0;
}

/** Every address of `hostname` of the wanted family, as dns.lookup({ all: true }) would give them. */
async function lookupAll(hostname: string, options: LookupOptions, resolve: Resolver | undefined): Promise<LookupAddress[]> {
  const family = wantedFamily(options.family);
  const answers = resolve
    ? (await resolve(hostname)).map((address) => ({ address, family: isIP(address) }))
    : await dnsLookupAll(hostname, { ...options, all: true });
  return answers.filter((answer) => answer.family !== 0 && (family === 0 || answer.family === family));
}

/** A `lookup` for http.request / https.request: resolves like dns.lookup, then drops every refused address, so a DNS answer
 * that changed since the URL was checked cannot reach an internal address. Fails with code EWEBHOOKBLOCKED (the message is the
 * refusal) when nothing is left. With `all: false` it answers the first allowed address, never a refused one; with `all: true`
 * (Node's happy-eyeballs autoSelectFamily) the allowed ones. With allowPrivate and no resolver it is plain dns.lookup. */
export function guardedLookup(options: GuardOptions): LookupFunction {
  const { allowPrivate, resolve } = options;
  if (allowPrivate && resolve === undefined) {
    return (hostname, lookupOptions, callback) => dnsLookup(hostname, lookupOptions, callback);
  }
  return (hostname, lookupOptions, callback) => {
    const fail = (error: NodeJS.ErrnoException) => callback(error, lookupOptions.all ? [] : '');
    lookupAll(hostname, lookupOptions, resolve).then((answers) => {
      if (answers.length === 0) return fail(lookupError(`getaddrinfo ENOTFOUND ${hostname}`, 'ENOTFOUND', hostname));
      const allowed = allowPrivate ? answers : answers.filter((answer) => addressPhrase(answer.address) === undefined);
      const first = allowed[0];
      if (first === undefined) {
        // Every address is refused (answers is not empty), so the first one has a phrase.
        const refused = answers[0] as LookupAddress;
        const refusal = `the host ${hostname} resolves to ${refused.address}, ${addressPhrase(refused.address) ?? 'refused'}`;
        return fail(lookupError(refusal, BLOCKED, hostname));
      }
      if (lookupOptions.all) callback(null, allowed);
      else callback(null, first.address, first.family);
    }, (error: unknown) => {
      fail(error instanceof Error ? error : lookupError(String(error), 'ENOTFOUND', hostname));
    });
  };
}

/** For literal IP hosts Node does not call `lookup`, so a delivery checks them itself: the refusal for a URL whose host is a
 * literal IP, undefined for a host name (guardedLookup handles those) or when allowPrivate. */
export function refuseLiteralHost(url: URL, allowPrivate: boolean): Refusal | undefined {
  if (allowPrivate) return undefined;
  const literal = literalAddress(url);
  return literal === undefined ? undefined : refuseAddress(literal);
}
