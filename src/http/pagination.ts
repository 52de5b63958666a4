export interface PageWindow {
  page: number;
  perPage: number;
  total: number;
  /** When set, the `next` link carries this `cursor` (keyset pagination) besides the page number. */
  nextCursor?: string | null;
}

/** An opaque keyset cursor: base64url of `n<number>`. Clients only pass back what `next_cursor` or a Link gave them. */
export function encodeCursor(number: number): string {
  return Buffer.from(`n${number}`).toString('base64url');
}

/** The number a cursor stands for, or undefined when it is not one this service made. */
export function decodeCursor(cursor: string): number | undefined {
  const match = /^n([1-9]\d{0,9})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  const number = match ? Number(match[1]) : NaN;
  return Number.isSafeInteger(number) && number <= 2_147_483_647 ? number : undefined;
}

/** The request as paginationLinks() reads it: its URL and the query schema of its route. */
export interface PagedRequest {
  url: string;
  routeOptions: { schema?: { querystring?: unknown } };
}

/** The query parameters the route's schema documents: the only ones a link may carry. */
function documentedParameters({ routeOptions }: PagedRequest): Set<string> {
  const properties = (routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined)?.properties;
  return new Set(Object.keys(properties ?? {}));
}

/**
 * An RFC 8288 `Link` header for `first`, `prev`, `next` and `last`, relative to the request path, keeping the caller's
 * filters: only the parameters the route documents (already validated, so bounded), never the rest of the query
 * string, which would otherwise come back four times over (a 12 KB `?junk=` made 48 KB of headers).
 */
export function paginationLinks(request: PagedRequest, { page, perPage, total, nextCursor }: PageWindow): string {
  const [path = '/', search = ''] = request.url.split('?', 2);
  const documented = documentedParameters(request);
  const params = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(search)) if (documented.has(name) && name !== 'cursor') params.append(name, value);
  const last = Math.max(1, Math.ceil(total / perPage));
  const link = (target: number, rel: string, cursor?: string | null) => {
    params.set('page', String(target));
    params.set('per_page', String(perPage));
    if (cursor) params.set('cursor', cursor);
    const text = `<${path}?${params.toString()}>; rel="${rel}"`;
    params.delete('cursor');
    return text;
  };
  const links = [link(1, 'first')];
  if (page > 1) links.push(link(Math.min(page - 1, last), 'prev'));
  if (nextCursor !== undefined ? nextCursor !== null : page < last) links.push(link(page + 1, 'next', nextCursor));
  links.push(link(last, 'last'));
  return links.join(', ');
}
