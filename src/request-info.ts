/**
 * What a handler can read of the upgrade request, extracted once so a connection does not keep Node's
 * IncomingMessage (and its socket bookkeeping) alive for its whole life. Parsed on first use.
 */

/** Parses a Cookie header (RFC 6265 §5.4): `name=value` pairs separated by `;`, first one wins. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = Object.create(null) as Record<string, string>;
  if (header === undefined) return cookies;
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals <= 0) continue;
    const name = pair.slice(0, equals).trim();
    if (name === '' || name in cookies) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      cookies[name] = decodeURIComponent(value);
    } catch {
      cookies[name] = value;
    }
  }
  return cookies;
}

/** The path of a request target (not decoded: routes decode their parameters). */
export function pathOf(target: string): string {
  const question = target.indexOf('?');
  return question === -1 ? target : target.slice(0, question);
}

/** The query parameters of a request target. */
export function queryOf(target: string): URLSearchParams {
  const question = target.indexOf('?');
  return new URLSearchParams(question === -1 ? '' : target.slice(question + 1));
}

