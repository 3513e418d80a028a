/**
 * The case model and Autobahn's grading, replayed against a server with the conformance client.
 *
 * A case opens a connection, sends what Autobahn's case of the same number sends (same bytes, same
 * chops, same waits), and declares what it expects: one or more lists of events (for OK and, where
 * Autobahn allows it, NON-STRICT) and how the connection must end. When the TCP connection is gone the
 * case is graded as Autobahn grades it:
 *
 * - `behavior`: the events received are compared with each expected list; a match gives that list's
 *   grade, no match is FAILED. Cases that grade themselves (9.x) set it directly.
 * - `behaviorClose`: FAILED when the wrong side started the closing handshake; UNCLEAN when a clean
 *   close was required and did not happen; WRONG CODE when the server's close code is not one of those
 *   allowed; FAILED BY CLIENT when this client had to drop TCP; else OK. A server that answers a
 *   violation by dropping TCP without a close frame sends no code, which is allowed ("close with code X
 *   or drop TCP").
 * - the UTF-8 cases make a close started by the wrong side fatal (the server missed the invalid text),
 *   and the section 7 cases make a wrong close code fatal.
 *
 * Unlike Autobahn, a protocol violation by the server seen by the client (a masked frame, invalid UTF-8
 * in a text message, an invalid close frame) fails any case.
 *
 * Against a client (`testee` instead of `target`, Autobahn's fuzzingserver) the peer plays the server
 * and the same cases run with the roles swapped: the peer accepts the client's connection, sends the
 * same frames unmasked, and grades as Autobahn's fuzzingserver does. The server closes TCP after the
 * closing handshake, so this peer dropping TCP is no fault of the client (no FAILED BY CLIENT for it);
 * instead a clean close also requires the client to leave closing TCP to the server (RFC 6455 §7.1.1),
 * and anything the client under test throws fails the case.
 *
 * Over HTTP/2 (`http2` instead of `target`) each case runs on an extended CONNECT stream (RFC 8441)
 * instead of a TCP connection, graded by the same rules: "TCP" above then means the stream, the
 * server's close of it being its END_STREAM and a drop a RST_STREAM (client.ts says how, and why).
 */
import { CloseCode } from '../src/constants.ts';
import { ConformanceClient, type ClientTimeouts, type ConnectTarget, type Http2Target, type Observed, type ObservedMessage } from './client.ts';
import { describeParameters, type DeflateOffer } from './deflate-negotiation.ts';

export const Behavior = {
  OK: 'OK',
  NonStrict: 'NON-STRICT',
  Failed: 'FAILED',
  Informational: 'INFORMATIONAL',
  Unimplemented: 'UNIMPLEMENTED',
} as const;
export type Behavior = (typeof Behavior)[keyof typeof Behavior];

export const CloseBehavior = {
  OK: 'OK',
  Failed: 'FAILED',
  WrongCode: 'WRONG CODE',
  Unclean: 'UNCLEAN',
  FailedByClient: 'FAILED BY CLIENT',
  Informational: 'INFORMATIONAL',
} as const;
export type CloseBehavior = (typeof CloseBehavior)[keyof typeof CloseBehavior];

/** How the connection must end. */
export interface ExpectedClose {
  /** Whether this client (true) or the server (false) must send the first close frame. */
  readonly closedByMe: boolean;
  /** Close codes the server may send; sending none (dropping TCP) is always allowed by this check. */
  readonly codes: readonly number[];
  /** Whether a complete closing handshake followed by the server closing TCP is required. */
  readonly requireClean: boolean;
  /** UTF-8 cases: the wrong side starting the close fails the case (the server missed the bad text). */
  readonly closedByWrongEndpointIsFatal?: boolean;
}

/** What a running case can do and see. */
export interface CaseRun {
  readonly client: ConformanceClient;
  /** Events received so far (and observations the case added). */
  readonly received: Observed[];
  /** Multiplies the case's deliberate waits (`continueLater`): 1 is Autobahn's timing. */
  readonly timeScale: number;
  /** Declares an expected list of events and the grade it earns. */
  expect(behavior: 'OK' | 'NON-STRICT', events: readonly Observed[]): void;
  expectClose(close: ExpectedClose): void;
  /** Fails the connection after `seconds` if it is still not closed. */
  killAfter(seconds: number): void;
  /** Starts the closing handshake (a close frame without a code) after `seconds` if still open. */
  closeAfter(seconds: number): void;
  /** Runs `step` after `seconds` (times `timeScale`) unless the connection is closed by then. */
  continueLater(seconds: number, step: () => void): void;
  /** Adds an observation of the case's own to the received events. */
  observe(event: Observed): void;
  /** For cases that grade themselves (9.x): the behavior to report; null grades by `expect`. */
  behavior: Behavior | null;
  /** Text explaining the behavior, for self-grading cases. */
  result: string;
}

export interface Verdict {
  behavior: Behavior;
  behaviorClose: CloseBehavior;
  result: string;
  resultClose: string;
}

export interface ConformanceCase {
  /** Autobahn's case number, e.g. `6.4.1`. */
  readonly id: string;
  readonly description: string;
  readonly expectation: string;
  /** Part of the quick selection that runs in `npm test`. */
  readonly quick?: boolean;
  /** Do not start the closing handshake when the expected events have arrived (cases that close by hand). */
  readonly suppressClose?: boolean;
  /** Whether the duration is part of the result (performance cases). */
  readonly reportTime?: boolean;
  /** Safety bound for the whole case in seconds, beyond the case's own timers. Default 60. */
  readonly limit?: number;
  /** permessage-deflate offers of the opening handshake (sections 12 and 13); none by default. */
  readonly offers?: readonly DeflateOffer[];
  onOpen(run: CaseRun): void;
  /** Replaces the default handling of a received message: record it and close once all expected arrived. */
  onMessage?(run: CaseRun, message: ObservedMessage): void;
  /** Adjusts the verdict once the connection is gone. */
  finish?(verdict: Verdict, run: CaseRun): void;
}

export interface CaseResult {
  readonly id: string;
  readonly description: string;
  readonly expectation: string;
  readonly behavior: Behavior;
  readonly behaviorClose: CloseBehavior;
  readonly result: string;
  readonly resultClose: string;
  /** Milliseconds from the end of the opening handshake to the TCP close. */
  readonly duration: number;
  readonly reportTime: boolean;
  readonly expected: Readonly<Record<string, readonly string[]>>;
  readonly expectedClose: ExpectedClose | null;
  readonly received: readonly string[];
  readonly closedByMe: boolean;
  readonly failedByMe: boolean;
  readonly droppedByMe: boolean;
  readonly wasClean: boolean;
  readonly wasNotCleanReason: string | null;
  readonly wasCloseHandshakeTimeout: boolean;
  readonly wasServerConnectionDropTimeout: boolean;
  readonly localCloseCode: number | null;
  readonly remoteCloseCode: number | null;
  readonly remoteCloseReason: string | null;
  readonly violation: string | null;
  /** The permessage-deflate parameters in force, as a response would say them, or null. */
  readonly extension: string | null;
  /** Against a client: how the connection ended on the side of the client under test. */
  readonly testee?: string;
  /** Over HTTP/2: how the stream ended (END_STREAM or RST_STREAM, and by whom). */
  readonly stream?: string;
}

/** The client under test, for the replay against a client: the peer is then the server. */
export interface ClientUnderTest {
  /**
   * Starts the client on a new connection for `definition`, and resolves with the peer (in the server
   * role) once the opening handshake is over; rejects with the reason when it failed.
   */
  open(definition: ConformanceCase, timeouts: Partial<ClientTimeouts>): Promise<TesteeConnection>;
}

export interface TesteeConnection {
  readonly peer: ConformanceClient;
  /** Resolves (within a bound) once the client under test is done with the connection. */
  readonly done: Promise<TesteeOutcome>;
}

export interface TesteeOutcome {
  /** How the connection ended for the client, e.g. `WebSocketDisconnect 1002 (local) "reserved opcode 0x3"`. */
  readonly summary: string;
  /** What went wrong in the client itself (an unexpected exception, a hang), or null. */
  readonly problem: string | null;
}

export interface RunCaseOptions {
  /** The server under test: the peer connects to it as a client. */
  readonly target?: ConnectTarget;
  /**
   * Or the server under test over HTTP/2: each case is an extended CONNECT stream (RFC 8441) on this
   * target's session, instead of a TCP connection (client.ts says how the TCP events map to the stream).
   */
  readonly http2?: Http2Target;
  /** The client under test, instead of `target`: the peer accepts its connection as the server. */
  readonly testee?: ClientUnderTest;
  /** Multiplies deliberate waits (default 1, Autobahn's timing). */
  readonly timeScale?: number;
  readonly timeouts?: Partial<ClientTimeouts>;
}

/** Same events: same kinds, same bytes, same types (Autobahn compares pickled lists). */
export function sameEvents(a: readonly Observed[], b: readonly Observed[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.kind !== y.kind) return false;
    if (x.kind === 'timeout') {
      if (x.tag !== (y as typeof x).tag) return false;
    } else if (x.kind === 'message') {
      const z = y as typeof x;
      if (x.binary !== z.binary || !x.data.equals(z.data)) return false;
    } else if (!x.data.equals((y as typeof x).data)) {
      return false;
    }
  }
  return true;
}

/** A short printable form of an event (long payloads are cut). */
export function describeEvent(event: Observed): string {
  if (event.kind === 'timeout') return `timeout ${event.tag}`;
  const data = event.data;
  const shown = data.length <= 32 ? data.toString('hex') : `${data.subarray(0, 32).toString('hex')}…`;
  const what = event.kind === 'message' ? (event.binary ? 'binary message' : 'text message') : 'pong';
  return `${what} (${data.length} bytes) ${shown}`;
}

/** Runs one case on a fresh connection and grades it. Never throws for a misbehaving server. */
export async function runCase(definition: ConformanceCase, options: RunCaseOptions): Promise<CaseResult> {
  const { target, http2, testee: clientUnderTest } = options;
  if (target === undefined && http2 === undefined && clientUnderTest === undefined) {
    throw new TypeError('runCase needs a target or an http2 target (a server) or a testee (a client)');
  }
  let client: ConformanceClient;
  let testee: TesteeConnection | null = null;
  try {
    if (http2 !== undefined) {
      client = await ConformanceClient.connectHttp2(http2, options.timeouts, definition.offers);
    } else if (clientUnderTest === undefined) {
      client = await ConformanceClient.connect(target!, options.timeouts, definition.offers);
    } else {
      testee = await clientUnderTest.open(definition, options.timeouts ?? {});
      client = testee.peer;
    }
  } catch (error) {
    return unopened(definition, error instanceof Error ? error.message : String(error));
  }
  const timeScale = options.timeScale ?? 1;
  const expected = new Map<'OK' | 'NON-STRICT', readonly Observed[]>();
  let expectedClose: ExpectedClose | null = null;
  // A case that throws is a bug in the suite, not in the server: it fails the case with its message.
  let caseError: unknown = null;
  const guarded = (action: () => void): void => {
    try {
      action();
    } catch (error) {
      caseError ??= error;
      client.drop('the case itself failed');
    }
  };
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, action: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (client.state !== 'closed') guarded(action);
    }, ms);
    timers.add(timer);
  };

  const run: CaseRun = {
    client,
    received: [],
    timeScale,
    behavior: null,
    result: '',
    expect(behavior, events) {
      expected.set(behavior, events);
    },
    expectClose(close) {
      expectedClose = close;
    },
    killAfter(seconds) {
      later(seconds * 1000, () => client.kill());
    },
    closeAfter(seconds) {
      later(seconds * 1000, () => client.sendClose());
    },
    continueLater(seconds, step) {
      later(seconds * 1000 * timeScale, step);
    },
    observe(event) {
      run.received.push(event);
    },
  };

  // Autobahn: once the events received match every expected list, the client starts the closing
  // handshake itself when the case expects to be the one closing.
  const finishWhenDone = (): void => {
    for (const events of expected.values()) if (!sameEvents(run.received, events)) return;
    if (expectedClose?.closedByMe === true && definition.suppressClose !== true) {
      client.sendClose(expectedClose.codes[0] ?? CloseCode.NormalClosure);
    }
  };
  client.onObserved = (event) =>
    guarded(() => {
      if (event.kind === 'message' && definition.onMessage !== undefined) {
        definition.onMessage(run, event);
        return;
      }
      run.received.push(event);
      finishWhenDone();
    });

  const started = performance.now();
  guarded(() => definition.onOpen(run));
  const limit = setTimeout(() => client.drop('the case exceeded its time limit'), (definition.limit ?? 60) * 1000);
  await client.closed;
  const duration = Math.round(performance.now() - started);
  clearTimeout(limit);
  for (const timer of timers) clearTimeout(timer);
  const outcome = testee === null ? null : await testee.done;

  const verdict = grade(client, run, expected, expectedClose);
  definition.finish?.(verdict, run);
  if (outcome?.problem != null) {
    verdict.behavior = Behavior.Failed;
    verdict.result = `The client under test failed: ${outcome.problem}`;
  }
  if (caseError !== null) {
    verdict.behavior = Behavior.Failed;
    verdict.result = `The case itself threw: ${caseError instanceof Error ? caseError.message : String(caseError)}`;
  }
  const shownExpected: Record<string, string[]> = {};
  for (const [behavior, events] of expected) shownExpected[behavior] = events.map(describeEvent);
  return {
    id: definition.id,
    description: definition.description,
    expectation: definition.expectation,
    ...verdict,
    duration,
    reportTime: definition.reportTime === true,
    expected: shownExpected,
    expectedClose,
    received: run.received.map(describeEvent),
    closedByMe: client.closedByMe,
    failedByMe: client.failedByMe,
    droppedByMe: client.droppedByMe,
    wasClean: client.wasClean,
    wasNotCleanReason: client.wasClean ? null : client.wasNotCleanReason,
    wasCloseHandshakeTimeout: client.wasCloseHandshakeTimeout,
    wasServerConnectionDropTimeout: client.wasServerConnectionDropTimeout,
    localCloseCode: client.localCloseCode,
    remoteCloseCode: client.remoteCloseCode,
    remoteCloseReason: client.remoteCloseReason,
    violation: client.violation,
    extension: client.deflate === null ? null : describeParameters(client.deflate.parameters),
    ...(outcome === null ? {} : { testee: outcome.summary }),
    ...(client.transport === 'http2' ? { stream: describeStreamEnd(client) } : {}),
  };
}

/** How an HTTP/2 case's stream ended, for the report. */
function describeStreamEnd(client: ConformanceClient): string {
  if (client.droppedByMe) return 'reset by this client (RST_STREAM CANCEL)';
  if (client.serverResetStream !== null) return `reset by the server (RST_STREAM code ${client.serverResetStream}) before END_STREAM`;
  if (client.serverEndedStream) return 'ended by the server (END_STREAM), then by this client';
  return 'closed without END_STREAM or RST_STREAM seen';
}

function grade(
  client: ConformanceClient,
  run: CaseRun,
  expected: ReadonlyMap<'OK' | 'NON-STRICT', readonly Observed[]>,
  expectedClose: ExpectedClose | null,
): Verdict {
  // The endpoint under test: the server, or the client when the peer plays the server.
  const tested = client.role === 'client' ? 'server' : 'client';
  const verdict: Verdict = {
    behavior: Behavior.Failed,
    behaviorClose: CloseBehavior.Failed,
    result: 'The events received differ from every expected list.',
    resultClose: 'The TCP connection was dropped without a closing handshake.',
  };
  if (run.behavior !== null) {
    verdict.behavior = run.behavior;
    verdict.result = run.result;
  } else {
    for (const [behavior, events] of expected) {
      if (sameEvents(run.received, events)) {
        verdict.behavior = behavior;
        verdict.result = 'The events received match an expected list.';
        break;
      }
    }
  }
  if (expectedClose === null) {
    verdict.resultClose = 'The case declared no expected close.';
  } else if (expectedClose.closedByMe !== client.closedByMe) {
    verdict.resultClose = 'The connection was closed by the wrong endpoint.';
  } else if (expectedClose.requireClean && !client.wasClean) {
    verdict.behaviorClose = CloseBehavior.Unclean;
    verdict.resultClose = `A clean close is required here: ${client.wasNotCleanReason ?? 'not clean'}.`;
  } else if (client.remoteCloseCode !== null && !expectedClose.codes.includes(client.remoteCloseCode)) {
    verdict.behaviorClose = CloseBehavior.WrongCode;
    verdict.resultClose = `The close code should have been ${expectedClose.codes.join(',')} or empty, not ${client.remoteCloseCode}.`;
  } else if (client.role === 'client' && client.droppedByMe) {
    verdict.behaviorClose = CloseBehavior.FailedByClient;
    verdict.resultClose = `The server should close the TCP connection: ${client.wasNotCleanReason ?? 'the client dropped it'}.`;
  } else {
    verdict.behaviorClose = CloseBehavior.OK;
    verdict.resultClose = 'The connection was closed properly.';
  }
  if (expectedClose?.closedByWrongEndpointIsFatal === true && expectedClose.closedByMe !== client.closedByMe) {
    verdict.behavior = Behavior.Failed;
    verdict.result = `The wrong endpoint closed the connection: the ${tested} did not detect the invalid UTF-8.`;
  }
  if (client.violation !== null) {
    verdict.behavior = Behavior.Failed;
    verdict.result = `Protocol violation by the ${tested}: ${client.violation}.`;
  }
  return verdict;
}

function unopened(definition: ConformanceCase, reason: string): CaseResult {
  return {
    id: definition.id,
    description: definition.description,
    expectation: definition.expectation,
    behavior: Behavior.Failed,
    behaviorClose: CloseBehavior.Failed,
    result: `The opening handshake failed: ${reason}`,
    resultClose: 'The WebSocket opening handshake was never completed.',
    duration: 0,
    reportTime: definition.reportTime === true,
    expected: {},
    expectedClose: null,
    received: [],
    closedByMe: false,
    failedByMe: false,
    droppedByMe: false,
    wasClean: false,
    wasNotCleanReason: reason,
    wasCloseHandshakeTimeout: false,
    wasServerConnectionDropTimeout: false,
    localCloseCode: null,
    remoteCloseCode: null,
    remoteCloseReason: null,
    violation: null,
    extension: null,
  };
}

// ---------------------------------------------------------------- many cases

/** Case ids compare number by number: 6.9.1 < 6.10.1. */
export function compareCaseIds(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Whether `id` matches an Autobahn case pattern: `*` stands for anything (`6.4.*`, `9.*`, `*`), other
 * characters match themselves.
 */
export function matchesCasePattern(id: string, pattern: string): boolean {
  if (!pattern.includes('*')) return id === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(id);
}

/** Whether a result is a strict pass of `allowed` behaviors: the behavior is allowed and the close was proper. */
export function passes(result: Pick<CaseResult, 'behavior' | 'behaviorClose'>, allowed: readonly string[]): boolean {
  if (!allowed.includes(result.behavior)) return false;
  return result.behaviorClose === CloseBehavior.OK || result.behaviorClose === CloseBehavior.Informational;
}
