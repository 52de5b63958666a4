import { once } from 'node:events';
import { request, createServer, type RequestOptions, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import type { AddressInfo, LookupFunction } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWebhookUrl, guardedLookup, refuseAddress, refuseLiteralHost } from '../../src/webhooks/ssrf.js';

const PUBLIC_V4 = '93.184.215.14';
const PUBLIC_V6 = '2606:2800:21f:cb07:6820:80da:af6b:8b2c';

/** A resolver answering `addresses` for any host, recording the hosts it was asked about. */
function answering(...addresses: string[]) {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    return addresses;
  };
  return Object.assign(resolve, { asked });
}

/** A resolver for paths that must not resolve anything (literal hosts, allowPrivate). */
const mustNotResolve = async (host: string): Promise<string[]> => {
  throw new Error(`resolved ${host}`);
};

describe('refuseAddress', () => {
  it('words its refusal as a sentence about the host', () => {
    expect(refuseAddress('127.0.0.1')).toBe('the host 127.0.0.1 is a loopback address');
  });

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'link-local address (a cloud metadata service)'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['255.255.255.255', 'broadcast'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.100.100.200', 'carrier-grade NAT address (a cloud metadata service)'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['192.0.2.1', 'reserved'],
    ['203.0.113.7', 'reserved'],
    ['240.0.0.1', 'reserved'],
  ])('refuses the IPv4 address %s (%s)', (address, phrase) => {
    expect(refuseAddress(address)).toContain(phrase);
  });

  it.each([
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fd00:ec2::254', 'unique-local address (a cloud metadata service)'],
    ['ff02::1', 'multicast'],
    ['fec0::1', 'site-local'],
    ['2001:db8::1', 'reserved'],
    ['2001::1', 'Teredo'],
    ['4000::1', 'not a global unicast address'],
  ])('refuses the IPv6 address %s (%s)', (address, phrase) => {
    expect(refuseAddress(address)).toContain(phrase);
  });

  it.each([
    ['::ffff:127.0.0.1', 'an IPv4-mapped IPv6 address embedding 127.0.0.1, a loopback address'],
    ['::ffff:7f00:1', 'an IPv4-mapped IPv6 address embedding 127.0.0.1, a loopback address'],
    ['0:0:0:0:0:ffff:a01:203', 'an IPv4-mapped IPv6 address embedding 10.1.2.3, a private address'],
    ['::ffff:a9fe:a9fe', 'an IPv4-mapped IPv6 address embedding 169.254.169.254, a link-local address (a cloud metadata service)'],
    ['::ffff:0:7f00:1', 'an IPv4-translated IPv6 address embedding 127.0.0.1, a loopback address'],
    ['::127.0.0.1', 'an IPv4-compatible IPv6 address embedding 127.0.0.1, a loopback address'],
    ['::7f00:1', 'an IPv4-compatible IPv6 address embedding 127.0.0.1, a loopback address'],
    ['64:ff9b::a9fe:a9fe', 'a NAT64 address embedding 169.254.169.254, a link-local address (a cloud metadata service)'],
    ['64:ff9b::10.0.0.1', 'a NAT64 address embedding 10.0.0.1, a private address'],
    ['64:ff9b:1::1', 'a local-use NAT64 address'],
    ['2002:7f00:1::', 'a 6to4 address embedding 127.0.0.1, a loopback address'],
    ['2002:c0a8:101::1', 'a 6to4 address embedding 192.168.1.1, a private address'],
  ])('refuses %s, which embeds a refused IPv4 address', (address, phrase) => {
    expect(refuseAddress(address)).toBe(`the host ${address} is ${phrase}`);
  });

  it('refuses IPv4-compatible addresses even around a public IPv4 address, whatever the spelling', () => {
    // ::8.8.8.8 and ::808:808 are one address: ipaddr.js rewrites the first into ::ffff:8.8.8.8, which must not let it through.
    expect(refuseAddress('::8.8.8.8')).toBe('the host ::8.8.8.8 is a deprecated IPv4-compatible IPv6 address');
    expect(refuseAddress('::808:808')).toBe('the host ::808:808 is a deprecated IPv4-compatible IPv6 address');
  });

  it.each([
    PUBLIC_V4,
    '8.8.8.8',
    '172.32.0.1', // just past 172.16/12
    '172.15.255.255', // just before it
    '100.128.0.1', // just past 100.64/10
    '198.20.0.1', // just past 198.18/15
    '169.255.0.1', // just past 169.254/16
    PUBLIC_V6,
    '2a00:1450:4007:80e::200e',
    '::ffff:93.184.215.14', // IPv4-mapped, but what it maps to is public
    '64:ff9b::808:808', // NAT64 of a public address
    '2002:5db8:d70e::1', // 6to4 of 93.184.215.14
  ])('allows the global unicast address %s', (address) => {
    expect(refuseAddress(address)).toBeUndefined();
  });

  it.each(['', 'not-an-ip', 'localhost', '1.2.3.4.5', '256.0.0.1', '::g', '0177.0.0.1', '2130706433', '0x7f.1', '[::1]'])(
    'refuses the unparseable text %j',
    (text) => {
      expect(refuseAddress(text)).toBe(`the host ${text} is not a valid IP address`);
    },
  );
});

describe('the WHATWG URL parser, which the literal checks rely on', () => {
  it.each([
    ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['http://[::ffff:7f00:1]/', '[::ffff:7f00:1]'],
    ['http://[0:0:0:0:0:ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['http://[::127.0.0.1]/', '[::7f00:1]'],
    ['http://2130706433/', '127.0.0.1'],
    ['http://0177.0.0.1/', '127.0.0.1'],
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://0x7f000001/', '127.0.0.1'],
    ['http://127.1/', '127.0.0.1'],
    ['http://127.0.0.1./', '127.0.0.1'],
    ['http://0/', '0.0.0.0'],
  ])('turns the host of %s into %s', (url, hostname) => {
    expect(new URL(url).hostname).toBe(hostname);
  });
});

describe('checkWebhookUrl', () => {
  const guard = { allowPrivate: false, resolve: mustNotResolve };

  it.each([
    ['http://127.0.0.1/', 'the host 127.0.0.1 is a loopback address'],
    ['http://2130706433/', 'the host 127.0.0.1 is a loopback address'],
    ['http://0177.0.0.1/', 'the host 127.0.0.1 is a loopback address'],
    ['http://0x7f.0.0.1/', 'the host 127.0.0.1 is a loopback address'],
    ['http://0x7f000001/', 'the host 127.0.0.1 is a loopback address'],
    ['https://10.0.0.8:8443/hook', 'the host 10.0.0.8 is a private address'],
    ['http://169.254.169.254/latest/meta-data', 'the host 169.254.169.254 is a link-local address (a cloud metadata service)'],
    ['http://100.100.100.200/latest/meta-data', 'the host 100.100.100.200 is a carrier-grade NAT address (a cloud metadata service)'],
    ['http://0.0.0.0:3000/', 'the host 0.0.0.0 is an unspecified address'],
    ['http://[::1]:8080/', 'the host ::1 is a loopback address'],
    ['http://[::]/', 'the host :: is an unspecified address'],
    ['http://[fd00:ec2::254]/', 'the host fd00:ec2::254 is a unique-local address (a cloud metadata service)'],
    ['http://[fe80::1]/', 'the host fe80::1 is a link-local address'],
    ['http://[::ffff:127.0.0.1]/', 'the host ::ffff:7f00:1 is an IPv4-mapped IPv6 address embedding 127.0.0.1, a loopback address'],
    ['http://[::ffff:7f00:1]/', 'the host ::ffff:7f00:1 is an IPv4-mapped IPv6 address embedding 127.0.0.1, a loopback address'],
    ['http://[::127.0.0.1]/', 'the host ::7f00:1 is an IPv4-compatible IPv6 address embedding 127.0.0.1, a loopback address'],
    ['http://[64:ff9b::169.254.169.254]/', 'the host 64:ff9b::a9fe:a9fe is a NAT64 address embedding 169.254.169.254'],
  ])('refuses the literal host of %s without resolving anything', async (url, refusal) => {
    expect(await checkWebhookUrl(url, guard)).toContain(refusal);
  });

  it('allows a public literal host', async () => {
    expect(await checkWebhookUrl(`https://${PUBLIC_V4}/hook`, guard)).toBeUndefined();
    expect(await checkWebhookUrl(`https://[${PUBLIC_V6}]:8443/hook`, guard)).toBeUndefined();
  });

  it.each([
    ['127.0.0.1', 'a loopback address'],
    ['::1', 'a loopback address'],
    ['10.1.2.3', 'a private address'],
    ['169.254.169.254', 'a link-local address (a cloud metadata service)'],
    ['::ffff:192.168.0.1', 'an IPv4-mapped IPv6 address embedding 192.168.0.1, a private address'],
  ])('refuses a name resolving to %s', async (address, phrase) => {
    const refusal = await checkWebhookUrl('https://hooks.example/deliver', { allowPrivate: false, resolve: answering(address) });
    expect(refusal).toBe(`the host hooks.example resolves to ${address}, ${phrase}`);
  });

  it('refuses a name resolving to public and private addresses alike, whichever comes first', async () => {
    const url = 'https://hooks.example/deliver';
    expect(await checkWebhookUrl(url, { allowPrivate: false, resolve: answering(PUBLIC_V4, '10.0.0.1') }))
      .toBe('the host hooks.example resolves to 10.0.0.1, a private address');
    expect(await checkWebhookUrl(url, { allowPrivate: false, resolve: answering('fd00::1', PUBLIC_V6, PUBLIC_V4) }))
      .toBe('the host hooks.example resolves to fd00::1, a unique-local address');
  });

  it('allows a name resolving only to public addresses, and asks the resolver about the normalised host name', async () => {
    const resolve = answering(PUBLIC_V4, PUBLIC_V6);
    expect(await checkWebhookUrl('https://Hooks.EXAMPLE:8443/deliver?x=1', { allowPrivate: false, resolve })).toBeUndefined();
    expect(resolve.asked).toEqual(['hooks.example']);
    expect(await checkWebhookUrl('https://bücher.example/', { allowPrivate: false, resolve })).toBeUndefined();
    expect(resolve.asked[1]).toBe('xn--bcher-kva.example');
  });

  it('refuses a name that does not resolve', async () => {
    const notFound = async (): Promise<string[]> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' });
    };
    expect(await checkWebhookUrl('https://nowhere.example/', { allowPrivate: false, resolve: notFound }))
      .toBe('the host nowhere.example does not resolve');
    expect(await checkWebhookUrl('https://nowhere.example/', { allowPrivate: false, resolve: answering() }))
      .toBe('the host nowhere.example does not resolve');
  });

  it('gives up on a resolver that does not answer, and says so, instead of holding the request', async () => {
    const silent = () => new Promise<string[]>(() => {});
    const refusal = await checkWebhookUrl('https://hooks.example.com/x', { allowPrivate: false, resolve: silent });
    expect(refusal).toBe('the host hooks.example.com did not resolve within 3 s');
  });

  it('resolves with the system resolver by default: localhost is refused', async () => {
    expect(await checkWebhookUrl('http://localhost:3000/', { allowPrivate: false }))
      .toMatch(/^the host localhost resolves to (127\.\d+\.\d+\.\d+|::1), a loopback address$/);
  });

  it.each([
    ['ftp://hooks.example/', 'the scheme ftp: is not allowed (only http: and https:)'],
    ['file:///etc/passwd', 'the scheme file: is not allowed (only http: and https:)'],
    ['javascript:alert(1)', 'the scheme javascript: is not allowed (only http: and https:)'],
    ['data:text/plain,hello', 'the scheme data: is not allowed (only http: and https:)'],
    ['ws://hooks.example/', 'the scheme ws: is not allowed (only http: and https:)'],
    ['gopher://127.0.0.1:6379/_INFO', 'the scheme gopher: is not allowed (only http: and https:)'],
    ['not a url', 'the URL is not a valid absolute URL'],
    ['/relative/path', 'the URL is not a valid absolute URL'],
    ['http://', 'the URL is not a valid absolute URL'],
  ])('refuses %s', async (url, refusal) => {
    expect(await checkWebhookUrl(url, { allowPrivate: false, resolve: answering(PUBLIC_V4) })).toBe(refusal);
  });

  it.each(['https://user:pass@hooks.example/', 'https://user@hooks.example/', 'https://:pass@hooks.example/'])(
    'refuses credentials in %s',
    async (url) => {
      expect(await checkWebhookUrl(url, { allowPrivate: false, resolve: answering(PUBLIC_V4) }))
        .toBe('the URL must not contain credentials (user:password@)');
    },
  );

  it('with allowPrivate, allows internal hosts without resolving but still checks scheme and credentials', async () => {
    const open = { allowPrivate: true, resolve: mustNotResolve };
    expect(await checkWebhookUrl('http://127.0.0.1:3000/hook', open)).toBeUndefined();
    expect(await checkWebhookUrl('http://[::1]/hook', open)).toBeUndefined();
    expect(await checkWebhookUrl('http://receiver.internal/hook', open)).toBeUndefined();
    expect(await checkWebhookUrl('ftp://127.0.0.1/', open)).toBe('the scheme ftp: is not allowed (only http: and https:)');
    expect(await checkWebhookUrl('http://u:p@127.0.0.1/', open)).toBe('the URL must not contain credentials (user:password@)');
  });
});

describe('refuseLiteralHost', () => {
  it('refuses literal internal hosts, however they were spelt', () => {
    expect(refuseLiteralHost(new URL('http://0x7f.1/'), false)).toBe('the host 127.0.0.1 is a loopback address');
    expect(refuseLiteralHost(new URL('http://[::ffff:127.0.0.1]/'), false)).toContain('embedding 127.0.0.1, a loopback address');
    expect(refuseLiteralHost(new URL('http://169.254.169.254/latest/meta-data'), false)).toContain('link-local');
  });

  it('leaves host names to guardedLookup, public literals alone, and everything alone with allowPrivate', () => {
    expect(refuseLiteralHost(new URL('http://localhost/'), false)).toBeUndefined();
    expect(refuseLiteralHost(new URL('http://127.0.0.1.nip.io/'), false)).toBeUndefined();
    expect(refuseLiteralHost(new URL(`http://${PUBLIC_V4}/`), false)).toBeUndefined();
    expect(refuseLiteralHost(new URL(`http://[${PUBLIC_V6}]/`), false)).toBeUndefined();
    expect(refuseLiteralHost(new URL('http://127.0.0.1/'), true)).toBeUndefined();
  });
});

type LookupResult = { error: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number };

/** Calls `lookup` the way net.connect does, collecting what it calls back with. */
function callLookup(lookup: LookupFunction, host: string, options: Parameters<LookupFunction>[1]): Promise<LookupResult> {
  return new Promise((resolve) => lookup(host, options, (error, address, family) => resolve({ error, address, family })));
}

describe('guardedLookup', () => {
  it('refuses a name resolving to 127.0.0.1, asked for one address or for all', async () => {
    const lookup = guardedLookup({ allowPrivate: false, resolve: answering('127.0.0.1') });
    for (const all of [false, true]) {
      const { error } = await callLookup(lookup, 'localhost.test', { all });
      expect(error?.code).toBe('EWEBHOOKBLOCKED');
      expect(error?.message).toBe('the host localhost.test resolves to 127.0.0.1, a loopback address');
    }
  });

  it('refuses when every address is refused', async () => {
    const lookup = guardedLookup({ allowPrivate: false, resolve: answering('::1', '10.0.0.1', '169.254.169.254') });
    const { error } = await callLookup(lookup, 'rebind.example', { all: true });
    expect(error?.code).toBe('EWEBHOOKBLOCKED');
    expect(error?.message).toBe('the host rebind.example resolves to ::1, a loopback address');
  });

  it('drops the refused addresses and hands over the public ones', async () => {
    const lookup = guardedLookup({ allowPrivate: false, resolve: answering('10.0.0.1', PUBLIC_V4, '::1', PUBLIC_V6) });
    expect(await callLookup(lookup, 'mixed.example', { all: true })).toEqual({
      error: null,
      address: [{ address: PUBLIC_V4, family: 4 }, { address: PUBLIC_V6, family: 6 }],
      family: undefined,
    });
    // Asked for one address, it never answers a refused one even when that one comes first.
    expect(await callLookup(lookup, 'mixed.example', { all: false })).toEqual({ error: null, address: PUBLIC_V4, family: 4 });
    expect(await callLookup(lookup, 'mixed.example', { family: 6 })).toEqual({ error: null, address: PUBLIC_V6, family: 6 });
  });

  it('fails with ENOTFOUND when nothing of the wanted family resolves, and passes resolver errors on', async () => {
    const v4Only = guardedLookup({ allowPrivate: false, resolve: answering(PUBLIC_V4) });
    expect((await callLookup(v4Only, 'v4.example', { family: 6 })).error?.code).toBe('ENOTFOUND');
    const failing = guardedLookup({
      allowPrivate: false,
      resolve: async () => {
        throw Object.assign(new Error('queryA ETIMEOUT slow.example'), { code: 'ETIMEOUT' });
      },
    });
    expect((await callLookup(failing, 'slow.example', { all: true })).error?.code).toBe('ETIMEOUT');
  });

  it('with allowPrivate, answers internal addresses', async () => {
    const lookup = guardedLookup({ allowPrivate: true, resolve: answering('127.0.0.1') });
    expect(await callLookup(lookup, 'localhost.test', { all: false })).toEqual({ error: null, address: '127.0.0.1', family: 4 });
  });

  it('uses the system resolver by default, refusing localhost unless allowPrivate', async () => {
    const { error } = await callLookup(guardedLookup({ allowPrivate: false }), 'localhost', { all: true });
    expect(error?.code).toBe('EWEBHOOKBLOCKED');
    const open = await callLookup(guardedLookup({ allowPrivate: true }), 'localhost', { all: false });
    expect(open.error).toBeNull();
    expect(open.address).toMatch(/^(127\.\d+\.\d+\.\d+|::1)$/);
  });
});

describe('an http.request through guardedLookup', () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
  });

  /** `lookup`, recording whether net asked it for all addresses (it leaves `all` out otherwise). */
  function recording(lookup: LookupFunction) {
    const calls: boolean[] = [];
    const recorded: LookupFunction = (host, options, callback) => {
      calls.push(options.all === true);
      lookup(host, options, callback);
    };
    return { lookup: recorded, calls };
  }

  /** A server on 127.0.0.1 counting the connections and requests that reach it. */
  async function listen() {
    const seen = { connections: 0, requests: 0 };
    server = createServer((_req, res) => {
      seen.requests += 1;
      res.end('delivered');
    });
    server.on('connection', () => {
      seen.connections += 1;
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { port: (server.address() as AddressInfo).port, seen };
  }

  /** GET http://localhost.test:<port>/ with `lookup`; the status and body, or the error. */
  function get(port: number, lookup: LookupFunction, autoSelectFamily: boolean) {
    // autoSelectFamily (missing from @types/node's http options) decides whether net asks lookup for all addresses (happy eyeballs).
    const options: RequestOptions & { autoSelectFamily: boolean } = {
      host: 'localhost.test',
      port,
      lookup,
      agent: false,
      autoSelectFamily,
    };
    return new Promise<{ status?: number; body?: string; error?: NodeJS.ErrnoException }>((resolve) => {
      const req = request(options, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', (error: NodeJS.ErrnoException) => resolve({ error }));
      req.end();
    });
  }

  it.each([true, false])('is refused before connecting when the name resolves to 127.0.0.1 (autoSelectFamily %s)', async (autoSelect) => {
    const { port, seen } = await listen();
    const { lookup, calls } = recording(guardedLookup({ allowPrivate: false, resolve: async () => ['127.0.0.1'] }));
    const result = await get(port, lookup, autoSelect);
    expect(calls).toEqual([autoSelect]);
    expect(result.status).toBeUndefined();
    expect(result.error?.code).toBe('EWEBHOOKBLOCKED');
    expect(result.error?.message).toBe('the host localhost.test resolves to 127.0.0.1, a loopback address');
    expect(seen).toEqual({ connections: 0, requests: 0 });
  });

  it.each([true, false])('is delivered with allowPrivate (autoSelectFamily %s)', async (autoSelect) => {
    const { port, seen } = await listen();
    const { lookup, calls } = recording(guardedLookup({ allowPrivate: true, resolve: async () => ['127.0.0.1'] }));
    const result = await get(port, lookup, autoSelect);
    expect(calls).toEqual([autoSelect]);
    expect(result).toEqual({ status: 200, body: 'delivered' });
    expect(seen).toEqual({ connections: 1, requests: 1 });
  });
});
