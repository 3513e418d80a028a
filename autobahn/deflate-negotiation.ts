/**
 * The client's side of the permessage-deflate negotiation (RFC 7692 §5, §7.1): the offers of the
 * `Sec-WebSocket-Extensions` request header, and the check of the server's response header against
 * them, which either yields the parameters both sides will use or says why the response is invalid
 * (the client then fails the connection).
 *
 * The offers are Autobahn's: every one of them says `client_no_context_takeover` and
 * `client_max_window_bits` (no value), and some ask for `server_no_context_takeover` and
 * `server_max_window_bits=N`. What Autobahn does with the response is copied too, where it differs from
 * a reading of RFC 7692 that would test the server less: see `negotiate`.
 */

/** One permessage-deflate offer (an element of the request's extension list). */
export interface DeflateOffer {
  /** `client_no_context_takeover`: a hint that the client will not need context takeover (§7.1.1.2). */
  readonly clientNoContextTakeover?: boolean;
  /** `client_max_window_bits` without a value: the server may choose the client's window (§7.1.2.2). */
  readonly clientMaxWindowBits?: boolean;
  /** `server_no_context_takeover`: the server must reset its compressor after each message (§7.1.1.1). */
  readonly serverNoContextTakeover?: boolean;
  /** `server_max_window_bits=N`, 8 to 15: the largest window the server may compress with (§7.1.2.1). */
  readonly serverMaxWindowBits?: number;
}

/** What both sides use once the server accepted an offer. */
export interface DeflateParameters {
  /** The server starts every message with an empty window. */
  readonly serverNoContextTakeover: boolean;
  /** The client starts every message with an empty window. */
  readonly clientNoContextTakeover: boolean;
  /** Base-2 logarithm of the server's LZ77 window, 8 to 15 (15 when not negotiated). */
  readonly serverMaxWindowBits: number;
  /** Base-2 logarithm of the client's LZ77 window, 8 to 15 (15 when not negotiated). */
  readonly clientMaxWindowBits: number;
}

export const EXTENSION_NAME = 'permessage-deflate';
const MIN_WINDOW_BITS = 8;
const MAX_WINDOW_BITS = 15;

/** The server's response does not accept any of the offers, or is not a valid response at all. */
export class InvalidExtensionResponse extends Error {
  override readonly name = 'InvalidExtensionResponse';
}

/** One offer as an element of the extension list, parameters in the order Autobahn writes them. */
export function formatOffer(offer: DeflateOffer): string {
  const parts = [EXTENSION_NAME];
  if (offer.clientNoContextTakeover === true) parts.push('client_no_context_takeover');
  if (offer.clientMaxWindowBits === true) parts.push('client_max_window_bits');
  if (offer.serverNoContextTakeover === true) parts.push('server_no_context_takeover');
  if (offer.serverMaxWindowBits !== undefined) {
    if (!isWindowBits(offer.serverMaxWindowBits)) throw new RangeError(`server_max_window_bits must be 8 to 15, not ${offer.serverMaxWindowBits}`);
    parts.push(`server_max_window_bits=${offer.serverMaxWindowBits}`);
  }
  return parts.join('; ');
}

/** The value of the request's `Sec-WebSocket-Extensions` header: the offers in order of preference. */
export function formatOffers(offers: readonly DeflateOffer[]): string {
  return offers.map(formatOffer).join(', ');
}

/** An element of an extension list: a name and its parameters in order, `null` for one without a value. */
export interface ExtensionElement {
  readonly name: string;
  readonly params: readonly (readonly [name: string, value: string | null])[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
 * `extension *( "," extension )`, `extension = token *( ";" token [ "=" ( token | quoted-string ) ] )`,
 * whitespace allowed around the separators. A quoted value is unquoted and must then be a token
 * (RFC 6455 §9.1). Throws InvalidExtensionResponse on anything else.
 */
export function parseExtensionList(value: string): ExtensionElement[] {
  const elements: ExtensionElement[] = [];
  let position = 0;
  const skipSpace = (): void => {
    while (value[position] === ' ' || value[position] === '\t') position++;
  };
  const readToken = (what: string): string => {
    skipSpace();
    const start = position;
    while (position < value.length && TOKEN.test(value[position]!)) position++;
    if (position === start) throw new InvalidExtensionResponse(`expected ${what} at offset ${start} of ${JSON.stringify(value)}`);
    return value.slice(start, position);
  };
  const readValue = (): string => {
    skipSpace();
    if (value[position] !== '"') return readToken('a parameter value');
    let text = '';
    for (position++; position < value.length && value[position] !== '"'; position++) {
      if (value[position] === '\\') position++;
      text += value[position] ?? '';
    }
    if (value[position] !== '"') throw new InvalidExtensionResponse(`unterminated quoted string in ${JSON.stringify(value)}`);
    position++;
    if (!TOKEN.test(text)) throw new InvalidExtensionResponse(`the quoted value ${JSON.stringify(text)} is not a token`);
    return text;
  };
  for (;;) {
    const name = readToken('an extension name');
    const params: [string, string | null][] = [];
    skipSpace();
    while (value[position] === ';') {
      position++;
      const param = readToken('a parameter name');
      skipSpace();
      if (value[position] === '=') {
        position++;
        params.push([param, readValue()]);
        skipSpace();
      } else {
        params.push([param, null]);
      }
    }
    elements.push({ name, params });
    if (position === value.length) return elements;
    if (value[position] !== ',') throw new InvalidExtensionResponse(`unexpected ${JSON.stringify(value[position])} at offset ${position} of ${JSON.stringify(value)}`);
    position++;
  }
}

/** The parameters of one permessage-deflate response element, checked one by one (RFC 7692 §7). */
interface DeflateResponse {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  readonly serverMaxWindowBits: number | null;
  readonly clientMaxWindowBits: number | null;
}

const isWindowBits = (bits: number): boolean => Number.isInteger(bits) && bits >= MIN_WINDOW_BITS && bits <= MAX_WINDOW_BITS;

/**
 * The four parameters of one permessage-deflate element, read the same way for an offer and for a
 * response (RFC 7692 §7): each at most once, no value for the two takeover flags, a window size a
 * decimal integer from 8 to 15 without leading zeros, nothing else. `client_max_window_bits` may lack
 * its value in an offer only (§7.1.2.2); it is then 0. Throws the side's error.
 */
function readParameters(element: ExtensionElement, side: 'offer' | 'response'): ReceivedOffer {
  const invalid = (reason: string): Error =>
    side === 'offer' ? new InvalidExtensionOffer(reason) : new InvalidExtensionResponse(reason);
  const windowBits = (name: string, value: string | null): number => {
    if (value === null || !/^[1-9][0-9]*$/.test(value) || !isWindowBits(Number(value))) {
      throw invalid(`${name} must have a value from 8 to 15 in ${side === 'offer' ? 'an offer' : 'a response'}, not ${value === null ? 'none' : JSON.stringify(value)}`);
    }
    return Number(value);
  };
  const seen = new Set<string>();
  let serverNoContextTakeover = false;
  let clientNoContextTakeover = false;
  let serverMaxWindowBits: number | null = null;
  let clientMaxWindowBits: number | null = null;
  for (const [given, value] of element.params) {
    // Names compare case-insensitively, as Autobahn compares them.
    const name = given.toLowerCase();
    // RFC 7692 §7: the same parameter twice makes the element invalid.
    if (seen.has(name)) throw invalid(`the ${side} has ${name} twice`);
    seen.add(name);
    switch (name) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        // RFC 7692 §7.1.1: these parameters have no value.
        if (value !== null) throw invalid(`${name} takes no value, got ${JSON.stringify(value)}`);
        if (name === 'server_no_context_takeover') serverNoContextTakeover = true;
        else clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits':
        serverMaxWindowBits = windowBits(name, value);
        break;
      case 'client_max_window_bits':
        clientMaxWindowBits = value === null && side === 'offer' ? 0 : windowBits(name, value);
        break;
      default:
        // RFC 7692 §7: a parameter not defined for permessage-deflate fails the handshake.
        throw invalid(`the ${side} has the unknown parameter ${name}`);
    }
  }
  return { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits };
}

/** Why `response` is not an acceptance of `offer`, or null when it is. */
function mismatch(offer: DeflateOffer, response: DeflateResponse): string | null {
  // RFC 7692 §7.1.1.1: the server accepts an offer of server_no_context_takeover by answering with it.
  if (offer.serverNoContextTakeover === true && !response.serverNoContextTakeover) {
    return 'server_no_context_takeover was asked for and is missing';
  }
  // RFC 7692 §7.1.2.1: the server accepts server_max_window_bits=N by answering with a value of at most N.
  if (offer.serverMaxWindowBits !== undefined) {
    if (response.serverMaxWindowBits === null) return `server_max_window_bits=${offer.serverMaxWindowBits} was asked for and is missing`;
    if (response.serverMaxWindowBits > offer.serverMaxWindowBits) {
      return `server_max_window_bits=${response.serverMaxWindowBits} is above the ${offer.serverMaxWindowBits} asked for`;
    }
  }
  // RFC 7692 §7.1.2.2: client_max_window_bits may only be answered to an offer that has it.
  if (response.clientMaxWindowBits !== null && offer.clientMaxWindowBits !== true) {
    return 'client_max_window_bits was not offered';
  }
  return null;
}

/**
 * Checks the server's `Sec-WebSocket-Extensions` response against the offers and returns the
 * parameters in force, or null when the server accepted no extension. Throws InvalidExtensionResponse
 * when the client must fail the connection: an extension that was not offered (RFC 6455 §9.1), two
 * permessage-deflate elements, an unknown, repeated or out-of-range parameter (RFC 7692 §7), or a
 * response that accepts none of the offers (RFC 7692 §7.1).
 *
 * `server_no_context_takeover` and `server_max_window_bits` may come in a response to an offer without
 * them (RFC 7692 §7.1.1.1, §7.1.2.1): the server then uses less than it could. `client_no_context_takeover`
 * may always come (§7.1.1.2). As Autobahn does, the client keeps its compression context from message to
 * message unless the response has `client_no_context_takeover`, although every offer says it as a hint
 * (§7.1.1.2 lets the client drop its context anyway): a server that ignores context takeover on the
 * strength of the hint fails here as it fails Autobahn.
 *
 * @param headerValues every `Sec-WebSocket-Extensions` field of the response (RFC 7230 §3.2.2 lets a
 *   list be split over several fields), empty when there is none.
 */
export function negotiate(offers: readonly DeflateOffer[], headerValues: readonly string[]): DeflateParameters | null {
  if (headerValues.length === 0) return null;
  const elements = headerValues.flatMap((value) => (value.trim() === '' ? [] : parseExtensionList(value)));
  if (elements.length === 0) return null;
  for (const element of elements) {
    // RFC 6455 §9.1: the server may only answer with extensions the client asked for.
    if (element.name.toLowerCase() !== EXTENSION_NAME || offers.length === 0) {
      throw new InvalidExtensionResponse(`the server accepted the extension ${element.name}, which was not offered`);
    }
  }
  // RFC 7692 §5: the server accepts one offer, so one element of the extension.
  if (elements.length > 1) throw new InvalidExtensionResponse(`the response has ${elements.length} ${EXTENSION_NAME} elements`);
  const response = readParameters(elements[0]!, 'response');
  const reasons = offers.map((offer) => mismatch(offer, response));
  if (!reasons.includes(null)) {
    throw new InvalidExtensionResponse(`the response accepts none of the offers: ${reasons.join('; ')}`);
  }
  return {
    serverNoContextTakeover: response.serverNoContextTakeover,
    clientNoContextTakeover: response.clientNoContextTakeover,
    serverMaxWindowBits: response.serverMaxWindowBits ?? MAX_WINDOW_BITS,
    clientMaxWindowBits: response.clientMaxWindowBits ?? MAX_WINDOW_BITS,
  };
}

/** The negotiated parameters as the response would say them, for reports. */
export function describeParameters(parameters: DeflateParameters): string {
  const parts = [EXTENSION_NAME];
  if (parameters.serverNoContextTakeover) parts.push('server_no_context_takeover');
  if (parameters.clientNoContextTakeover) parts.push('client_no_context_takeover');
  parts.push(`server_max_window_bits=${parameters.serverMaxWindowBits}`, `client_max_window_bits=${parameters.clientMaxWindowBits}`);
  return parts.join('; ');
}

// ---------------------------------------------------------------- the server's side

/**
 * What the conformance peer, as a server (the replay against a client), asks of the client when it
 * accepts an offer: the mirror of a case's DeflateOffer, as Autobahn's fuzzingserver mirrors its
 * fuzzingclient offers ("server accept (requestNoContextTakeover, requestMaxWindowBits)").
 */
export interface DeflateAcceptance {
  /** Answer `client_no_context_takeover`: the client must reset its compressor after each message. */
  readonly clientNoContextTakeover?: boolean;
  /** Answer `client_max_window_bits=N`; only possible when the client offered `client_max_window_bits`. */
  readonly clientMaxWindowBits?: number;
}

/** A client's permessage-deflate offer, as the server reads it (RFC 7692 §7.1). */
export interface ReceivedOffer {
  /** `server_no_context_takeover`: the server must reset its compressor after each message. */
  readonly serverNoContextTakeover: boolean;
  /** `client_no_context_takeover`: a hint; the server may always answer it (§7.1.1.2). */
  readonly clientNoContextTakeover: boolean;
  /** `server_max_window_bits=N` asked for, or null. */
  readonly serverMaxWindowBits: number | null;
  /** `client_max_window_bits`: null when not offered, 0 without a value, else its value (§7.1.2.2). */
  readonly clientMaxWindowBits: number | null;
}

/** The client's offer cannot be parsed or breaks RFC 7692 §7: the server fails the handshake, as Autobahn does. */
export class InvalidExtensionOffer extends Error {
  override readonly name = 'InvalidExtensionOffer';
}

/** The case's offer turned round: what it asks of the server, the server asks of the client. */
export function mirrorOffer(offer: DeflateOffer): DeflateAcceptance {
  return {
    ...(offer.serverNoContextTakeover === true ? { clientNoContextTakeover: true } : {}),
    ...(offer.serverMaxWindowBits === undefined ? {} : { clientMaxWindowBits: offer.serverMaxWindowBits }),
  };
}

/**
 * The permessage-deflate offers of a request's `Sec-WebSocket-Extensions` fields, in the client's
 * order; other extensions are left out (the server declines them by not answering them). Throws
 * InvalidExtensionOffer on a header that does not parse or an invalid permessage-deflate offer.
 */
export function readOffers(headerValues: readonly string[]): ReceivedOffer[] {
  const offers: ReceivedOffer[] = [];
  for (const value of headerValues) {
    if (value.trim() === '') continue;
    let elements: ExtensionElement[];
    try {
      elements = parseExtensionList(value);
    } catch (error) {
      throw new InvalidExtensionOffer(error instanceof Error ? error.message : String(error));
    }
    for (const element of elements) {
      if (element.name.toLowerCase() === EXTENSION_NAME) offers.push(readParameters(element, 'offer'));
    }
  }
  return offers;
}

/** What the server accepted: the parameters both sides use and the response's extension element. */
export interface DeflateAccepted {
  readonly parameters: DeflateParameters;
  readonly response: string;
}

/**
 * Autobahn's fuzzingserver acceptance: the first of `acceptances` (the case's preference) that one of
 * the `offers` (in the client's order) allows, or null (the server declines: no extension). An
 * acceptance that asks for `client_max_window_bits=N` needs an offer with `client_max_window_bits`
 * (RFC 7692 §7.1.2.2), and N is lowered to the offer's value when it has a smaller one;
 * `client_no_context_takeover` may always be asked for (§7.1.1.2). The response grants what the offer
 * asks of the server (`server_no_context_takeover`, `server_max_window_bits`), as it must (§7.1.1.1,
 * §7.1.2.1), and the parameters are written in Autobahn's order.
 */
export function acceptOffers(offers: readonly ReceivedOffer[], acceptances: readonly DeflateAcceptance[]): DeflateAccepted | null {
  for (const acceptance of acceptances) {
    for (const offer of offers) {
      if (acceptance.clientMaxWindowBits !== undefined && offer.clientMaxWindowBits === null) continue;
      const parts = [EXTENSION_NAME];
      if (offer.serverNoContextTakeover) parts.push('server_no_context_takeover');
      if (offer.serverMaxWindowBits !== null) parts.push(`server_max_window_bits=${offer.serverMaxWindowBits}`);
      const clientNoContextTakeover = acceptance.clientNoContextTakeover === true;
      if (clientNoContextTakeover) parts.push('client_no_context_takeover');
      let clientMaxWindowBits = MAX_WINDOW_BITS;
      if (acceptance.clientMaxWindowBits !== undefined) {
        const offered = offer.clientMaxWindowBits === null || offer.clientMaxWindowBits === 0 ? MAX_WINDOW_BITS : offer.clientMaxWindowBits;
        clientMaxWindowBits = Math.min(acceptance.clientMaxWindowBits, offered);
        parts.push(`client_max_window_bits=${clientMaxWindowBits}`);
      }
      return {
        parameters: {
          serverNoContextTakeover: offer.serverNoContextTakeover,
          clientNoContextTakeover,
          serverMaxWindowBits: offer.serverMaxWindowBits ?? MAX_WINDOW_BITS,
          clientMaxWindowBits,
        },
        response: parts.join('; '),
      };
    }
  }
  return null;
}
