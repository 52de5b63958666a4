export interface PageWindow {
  page: number;
  perPage: number;
  total: number;
}

/**
 * An RFC 8288 `Link` header for `first`, `prev`, `next` and `last`, relative to the request path,
 * keeping the caller's other query parameters.
 */
export function paginationLinks(url: string, { page, perPage, total }: PageWindow): string {
  const [path = '/', search = ''] = url.split('?', 2);
  const params = new URLSearchParams(search);
  const last = Math.max(1, Math.ceil(total / perPage));
  const link = (target: number, rel: string) => {
    params.set('page', String(target));
    params.set('per_page', String(perPage));
    return `<${path}?${params.toString()}>; rel="${rel}"`;
  };
  const links = [link(1, 'first')];
  if (page > 1) links.push(link(Math.min(page - 1, last), 'prev'));
  if (page < last) links.push(link(page + 1, 'next'));
  links.push(link(last, 'last'));
  return links.join(', ');
}
