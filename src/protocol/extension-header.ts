/**
 * The Sec-WebSocket-Extensions header (RFC 6455 §9.1): a list of extensions, each a name and
 * parameters, a parameter a name and an optional value (a token or a quoted-string).
 *
 * Parsing never throws: an element that does not follow the grammar is kept as an offer marked
 * `malformed`, so a negotiation can skip it and go on to the next offer (RFC 7692 §5: the server picks
 * the first offer it accepts), rather than refuse the whole handshake with 400.
 */

/** One parameter of an extension: `name` lower-cased; `value` null when it has none (`; foo`). */
export interface ExtensionParameter {
  readonly name: string;
  readonly value: string | null;
}

/** One element of the header: an extension offered (or accepted) with its parameters, in order. */
export interface ExtensionOffer {
  /** Lower-cased extension name (`permessage-deflate`). */
  readonly name: string;
  readonly parameters: readonly ExtensionParameter[];
  /** The element does not follow RFC 6455 §9.1: it cannot be accepted. */
  readonly malformed: boolean;
}

/** RFC 7230 §3.2.6 token characters. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Splits `value` at `separator` outside quoted-strings (RFC 7230 §3.2.6: a backslash escapes the next
 * character inside quotes). `unterminated` says the last part opens a quote it never closes.
 */
function splitOutsideQuotes(value: string, separator: string): { parts: string[]; unterminated: boolean } {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let index = 0; index < value.length; index++) {
    const char = value[index];
    if (quoted) {
      if (char === '\\') index++;
      else if (char === '"') quoted = false;
    } else if (char === '"') {
      quoted = true;
    } else if (char === separator) {
      parts.push(value.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(value.slice(start));
  return { parts, unterminated: quoted };
}

/**
 * A parameter's value: a token, or one quoted-string whose unescaped content is a token (RFC 6455
 * §9.1: "the value after quoted-string unescaping MUST conform to the 'token' ABNF"); null otherwise.
 */
function parameterValue(raw: string): string | null {
  if (TOKEN.test(raw)) return raw;
  if (raw.length < 2 || raw[0] !== '"') return null;
  let value = '';
  for (let index = 1; index < raw.length; index++) {
    const char = raw[index]!;
    if (char === '"') return index === raw.length - 1 && TOKEN.test(value) ? value : null;
    if (char === '\\') {
      index++;
      if (index === raw.length) return null;
      value += raw[index];
    } else {
      value += char;
    }
  }
  return null;
}

function parseElement(element: string): ExtensionOffer | null {
  if (element.trim() === '') return null;
  const { parts, unterminated } = splitOutsideQuotes(element, ';');
  const name = parts[0]!.trim().toLowerCase();
  if (unterminated || !TOKEN.test(name)) return { name, parameters: [], malformed: true };
  const parameters: ExtensionParameter[] = [];
  for (let index = 1; index < parts.length; index++) {
    const piece = parts[index]!;
    const equals = piece.indexOf('=');
    const parameterName = (equals === -1 ? piece : piece.slice(0, equals)).trim().toLowerCase();
    if (!TOKEN.test(parameterName)) return { name, parameters: [], malformed: true };
    if (equals === -1) {
      parameters.push({ name: parameterName, value: null });
      continue;
    }
    const value = parameterValue(piece.slice(equals + 1).trim());
    if (value === null) return { name, parameters: [], malformed: true };
    parameters.push({ name: parameterName, value });
  }
  return { name, parameters, malformed: false };
}

/**
 * Parses a Sec-WebSocket-Extensions value (several headers joined with commas, as RFC 7230 §3.2.2
 * allows) into its elements, in order. Empty elements are ignored; an unterminated quote makes the
 * element it opens in malformed, and the rest of the header with it.
 */
export function parseExtensionHeader(value: string | undefined): ExtensionOffer[] {
  if (value === undefined) return [];
  const offers: ExtensionOffer[] = [];
  for (const element of splitOutsideQuotes(value, ',').parts) {
    const offer = parseElement(element);
    if (offer !== null) offers.push(offer);
  }
  return offers;
}

/** Formats one extension element for a header: `name; a; b=10`. */
export function formatExtension(name: string, parameters: readonly ExtensionParameter[]): string {
  let text = name;
  for (const parameter of parameters) {
    text += parameter.value === null ? `; ${parameter.name}` : `; ${parameter.name}=${parameter.value}`;
  }
  return text;
}
