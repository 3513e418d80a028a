/**
 * permessage-deflate (RFC 7692): the settings a server accepts it with, and the negotiation (§5, §7.1)
 * as a pure function from the client's offers to the agreed parameters and the response element.
 *
 * The negotiation never refuses a handshake: an offer with an unknown or repeated parameter or a bad
 * value is skipped and the next one tried (§5: the server accepts the first offer it supports); when
 * none is acceptable the connection simply runs without compression (§9.1 of RFC 6455).
 */
import { formatExtension, type ExtensionOffer, type ExtensionParameter } from './extension-header.ts';

export const PERMESSAGE_DEFLATE = 'permessage-deflate';

/** How a server compresses, when it enables permessage-deflate (`perMessageDeflate: true | {...}`). */
export interface PerMessageDeflateOptions {
  /**
   * Messages smaller than this many bytes are sent uncompressed (RSV1 clear): compressing a few bytes
   * costs more CPU than it saves on the wire. Default 1024.
   */
  threshold?: number;
  /** zlib compression level, 0 (none) to 9 (best). Default 6 (zlib's default). */
  level?: number;
  /** zlib memory level for compressing, 1 to 9: memory per compression call against ratio. Default 8. */
  memLevel?: number;
  /**
   * Compress every message on its own (no LZ77 history carried between messages): the server then
   * keeps no compression state per connection, and a broadcast is compressed once for all
   * connections. `false` carries the history when the client allows it: better ratios for many small
   * similar messages, at 2^serverMaxWindowBits bytes kept per connection and a compression per
   * connection for broadcasts. Default true.
   */
  serverNoContextTakeover?: boolean;
  /**
   * Ask the client to compress every message on its own, so the server keeps no inflate history per
   * connection (otherwise up to 2^clientMaxWindowBits bytes). Default false: browsers compress better
   * with history.
   */
  clientNoContextTakeover?: boolean;
  /** LZ77 window the server compresses with, 8 to 15 (a client may ask for smaller). Default 15. */
  serverMaxWindowBits?: number;
  /**
   * Largest LZ77 window the server lets the client use, 8 to 15, when the client offers to limit it
   * (browsers do): the inflate history kept per connection is at most 2^clientMaxWindowBits bytes.
   * Default 15 (32 KiB).
   */
  clientMaxWindowBits?: number;
}

/** PerMessageDeflateOptions validated, with every default applied. */
export interface DeflateSettings {
  readonly threshold: number;
  readonly level: number;
  readonly memLevel: number;
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  readonly serverMaxWindowBits: number;
  readonly clientMaxWindowBits: number;
}

/** The agreed parameters of one connection (RFC 7692 §7.1), with the response element that states them. */
export interface DeflateParameters {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  /** 8 to 15: 15 when the response does not limit it. */
  readonly serverMaxWindowBits: number;
  readonly clientMaxWindowBits: number;
}

export interface DeflateAgreement extends DeflateParameters {
  /** The element for the 101's Sec-WebSocket-Extensions header: exactly the accepted parameters. */
  readonly response: string;
}

/** RFC 7692 §7.1.2: a window-bits value is a decimal integer 8 to 15 without leading zeros. */
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

function integer(options: PerMessageDeflateOptions, name: keyof PerMessageDeflateOptions, fallback: number, min: number, max: number): number {
  const value = options[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`perMessageDeflate.${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function flag(options: PerMessageDeflateOptions, name: keyof PerMessageDeflateOptions, fallback: boolean): boolean {
  const value = options[name] ?? fallback;
  if (typeof value !== 'boolean') throw new TypeError(`perMessageDeflate.${name} must be a boolean, got ${String(value)}`);
  return value;
}

/**
 * Validates the `perMessageDeflate` server option: `true` is every default, `false`/undefined disables
 * the extension (null). Throws RangeError/TypeError naming the bad setting.
 */
export function resolveDeflateOptions(option: boolean | PerMessageDeflateOptions | undefined): DeflateSettings | null {
  if (option === undefined || option === false) return null;
  const options: PerMessageDeflateOptions = option === true ? {} : option;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('perMessageDeflate must be a boolean or an object of settings');
  }
  const threshold = options.threshold ?? 1024;
  if (typeof threshold !== 'number' || !(threshold >= 0) || !(Number.isSafeInteger(threshold) || threshold === Infinity)) {
    throw new RangeError(`perMessageDeflate.threshold must be a non-negative integer number of bytes, got ${String(threshold)}`);
  }
  return {
    threshold,
    level: integer(options, 'level', 6, 0, 9),
    memLevel: integer(options, 'memLevel', 8, 1, 9),
    serverNoContextTakeover: flag(options, 'serverNoContextTakeover', true),
    clientNoContextTakeover: flag(options, 'clientNoContextTakeover', false),
    serverMaxWindowBits: integer(options, 'serverMaxWindowBits', 15, 8, 15),
    clientMaxWindowBits: integer(options, 'clientMaxWindowBits', 15, 8, 15),
  };
}

/** The parameters one offer asks for, or null when the offer is not acceptable as written. */
interface DeflateOffer {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** The largest window the client lets the server use; null when it does not limit it. */
  serverMaxWindowBits: number | null;
  /** null: not offered; 0: offered without a value; else the value the client will not exceed. */
  clientMaxWindowBits: number | null;
}

/** RFC 7692 §7.1: each parameter at most once, with a value exactly where the grammar has one. */
function readOffer(parameters: readonly ExtensionParameter[]): DeflateOffer | null {
  const offer: DeflateOffer = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: null,
    clientMaxWindowBits: null,
  };
  const seen = new Set<string>();
  for (const { name, value } of parameters) {
    // RFC 7692 §7: a parameter that appears twice makes the offer invalid.
    if (seen.has(name)) return null;
    seen.add(name);
    switch (name) {
      case 'server_no_context_takeover':
        // §7.1.1.1: no value.
        if (value !== null) return null;
        offer.serverNoContextTakeover = true;
        break;
      case 'client_no_context_takeover':
        // §7.1.1.2: no value.
        if (value !== null) return null;
        offer.clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits':
        // §7.1.2.1: a value from 8 to 15 is required.
        if (value === null || !WINDOW_BITS.test(value)) return null;
        offer.serverMaxWindowBits = Number(value);
        break;
      case 'client_max_window_bits':
        // §7.1.2.2: the value is optional; when present, 8 to 15.
        if (value !== null && !WINDOW_BITS.test(value)) return null;
        offer.clientMaxWindowBits = value === null ? 0 : Number(value);
        break;
      default:
        // §7: an unknown parameter makes the offer one this server cannot accept.
        return null;
    }
  }
  return offer;
}

/**
 * Server side of the negotiation (RFC 7692 §5, §7.1): the first acceptable permessage-deflate offer,
 * answered with the server's settings, or null when there is none (the connection then runs
 * uncompressed). A client limit always wins over the server's own preference; the server may add
 * limits of its own where the RFC lets it (`server_no_context_takeover`, `server_max_window_bits`,
 * `client_no_context_takeover`; `client_max_window_bits` only when the client offered it).
 */
export function negotiateDeflate(offers: readonly ExtensionOffer[], settings: DeflateSettings): DeflateAgreement | null {
  for (const candidate of offers) {
    if (candidate.name !== PERMESSAGE_DEFLATE || candidate.malformed) continue;
    const offer = readOffer(candidate.parameters);
    if (offer === null) continue;
    const response: ExtensionParameter[] = [];
    // §7.1.1.1: a server accepts the client's server_no_context_takeover by echoing it, and may add
    // it unasked.
    const serverNoContextTakeover = offer.serverNoContextTakeover || settings.serverNoContextTakeover;
    if (serverNoContextTakeover) response.push({ name: 'server_no_context_takeover', value: null });
    // §7.1.1.2: the server may ask the client not to carry its history; when the client offered it
    // anyway, saying so costs the client nothing and spares the server the history.
    const clientNoContextTakeover = offer.clientNoContextTakeover || settings.clientNoContextTakeover;
    if (clientNoContextTakeover) response.push({ name: 'client_no_context_takeover', value: null });
    // §7.1.2.1: an offered server_max_window_bits must be answered with the same or a smaller value;
    // the server may state a smaller window unasked.
    const serverMaxWindowBits = Math.min(offer.serverMaxWindowBits ?? 15, settings.serverMaxWindowBits);
    if (offer.serverMaxWindowBits !== null || serverMaxWindowBits < 15) {
      response.push({ name: 'server_max_window_bits', value: String(serverMaxWindowBits) });
    }
    // §7.1.2.2: client_max_window_bits may be answered only when offered, with a value no larger
    // than the offered one; without it the client may use the full 15-bit window.
    let clientMaxWindowBits = 15;
    if (offer.clientMaxWindowBits !== null) {
      const offered = offer.clientMaxWindowBits === 0 ? 15 : offer.clientMaxWindowBits;
      clientMaxWindowBits = Math.min(offered, settings.clientMaxWindowBits);
      if (clientMaxWindowBits < 15) response.push({ name: 'client_max_window_bits', value: String(clientMaxWindowBits) });
    }
    return {
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits,
      clientMaxWindowBits,
      response: formatExtension(PERMESSAGE_DEFLATE, response),
    };
  }
  return null;
}

/**
 * The client's offer (RFC 7692 §5, §7.1): one permessage-deflate element stating what these settings
 * ask of the server (`server_no_context_takeover`, a `server_max_window_bits` below 15) and what the
 * client will honour (`client_max_window_bits` always: a client that can compress with any window
 * says so, §7.1.2.2; `client_no_context_takeover` when it will not carry history anyway).
 */
export function deflateOffer(settings: DeflateSettings): string {
  const parameters: ExtensionParameter[] = [];
  if (settings.serverNoContextTakeover) parameters.push({ name: 'server_no_context_takeover', value: null });
  if (settings.clientNoContextTakeover) parameters.push({ name: 'client_no_context_takeover', value: null });
  if (settings.serverMaxWindowBits < 15) {
    parameters.push({ name: 'server_max_window_bits', value: String(settings.serverMaxWindowBits) });
  }
  parameters.push({
    name: 'client_max_window_bits',
    value: settings.clientMaxWindowBits < 15 ? String(settings.clientMaxWindowBits) : null,
  });
  return formatExtension(PERMESSAGE_DEFLATE, parameters);
}

/**
 * Client side of the negotiation (RFC 7692 §5, §7.1): the parameters the server's response element
 * agrees on, or the reason the client must fail the connection (a string). The response must accept
 * the offer `deflateOffer(settings)` made: known parameters only, each once and with a valid value;
 * `server_no_context_takeover` echoed when it was asked for; `server_max_window_bits` no larger than
 * asked; `client_max_window_bits` no larger than offered.
 */
export function acceptDeflateResponse(element: ExtensionOffer, settings: DeflateSettings): DeflateParameters | string {
  if (element.malformed) return 'malformed permessage-deflate response';
  const response = readOffer(element.parameters);
  // §7.1: an unknown or repeated parameter or an invalid value fails the connection.
  if (response === null) return 'invalid permessage-deflate parameters in the response';
  // §7.1.1.1: a server that accepts an offer with server_no_context_takeover includes it.
  if (settings.serverNoContextTakeover && !response.serverNoContextTakeover) {
    return 'the server did not accept server_no_context_takeover';
  }
  // §7.1.2.1: the server's window may be at most the one asked for; without one, 15.
  const serverMaxWindowBits = response.serverMaxWindowBits ?? 15;
  if (serverMaxWindowBits > settings.serverMaxWindowBits) return 'server_max_window_bits is larger than offered';
  // §7.1.2.2: the response's client_max_window_bits must have a value, no larger than the one offered.
  let clientMaxWindowBits = settings.clientMaxWindowBits;
  if (response.clientMaxWindowBits !== null) {
    if (response.clientMaxWindowBits === 0) return 'client_max_window_bits in the response has no value';
    if (response.clientMaxWindowBits > settings.clientMaxWindowBits) return 'client_max_window_bits is larger than offered';
    clientMaxWindowBits = response.clientMaxWindowBits;
  }
  return {
    serverNoContextTakeover: response.serverNoContextTakeover,
    // §7.1.1.2: the client may always start every message with an empty window of its own accord.
    clientNoContextTakeover: response.clientNoContextTakeover || settings.clientNoContextTakeover,
    serverMaxWindowBits,
    clientMaxWindowBits,
  };
}
