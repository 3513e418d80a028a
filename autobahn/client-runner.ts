/**
 * `npm run autobahn:client`: lets the official Autobahn|Testsuite grade our client. It drives a running
 * `wstest -m fuzzingserver` (see fuzzingserver.json and run-fuzzingserver.sh) with the usual protocol of
 * Autobahn's client runners:
 *
 *   /getCaseCount                 one text message, the number of cases N of the spec
 *   /getCaseInfo?case=I           one text message, {"id": "6.4.1", "description": ...}
 *   /runCase?case=I&agent=A       the case itself: echo every message back until the server closes
 *   /getCaseStatus?case=I&agent=A one text message, {"behavior": "OK"} once the case is graded
 *   /updateReports?agent=A        writes reports/clients/index.json and the per-case reports
 *
 *   npm run autobahn:client                                   # every case of the spec
 *   npm run autobahn:client -- --cases '1.*,2.*' --cases 7.9.1
 *   npm run autobahn:client -- --url ws://127.0.0.1:9001 --agent rfc6455 --case-timeout 600 --timeout 3600
 *
 * Every connection is made by our own client (`connect` from src/), and only to a loopback address:
 * the fuzzingserver attacks whatever connects to it, and a runner has no business elsewhere. Each case
 * offers permessage-deflate (RFC 7692), so sections 12 and 13 run compressed; the fuzzingserver
 * declines the offer in the other sections, which checks that the client runs uncompressed then.
 *
 * Bounded: each case has a timeout (longer than Autobahn's own, 480 s at most in sections 12/13), the
 * whole run a deadline after which no further case starts, and every command connection one too.
 * Prints one line per case with the server's verdict and exits with 0 when every selected case ran and
 * the reports were written, 1 when a case timed out or the deadline cut the run short (the reports are
 * still written), 2 on bad arguments or a fuzzingserver that cannot be reached. Grading the report is
 * run-fuzzingserver.sh's job (and `npm run autobahn:check autobahn/reports/clients`).
 */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { CloseCode, connect, WebSocketDisconnect } from '../src/index.ts';
import { matchesCasePattern } from './harness.ts';

const DEFAULT_URL = 'ws://127.0.0.1:9001';
const DEFAULT_AGENT = 'rfc6455';
/** Above Autobahn's longest case (480 s, 12.x/13.x with 128 KiB messages): only a stuck case hits it. */
const DEFAULT_CASE_TIMEOUT_S = 600;
/** The whole run; all 517 cases take some 10 to 20 minutes, sections 12 and 13 most of it. */
const DEFAULT_RUN_TIMEOUT_S = 3600;
/** Section 9 sends messages of up to 16 MiB; a limit well above keeps 9.x a test of the echo, not of the limit. */
const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** getCaseCount, getCaseInfo and getCaseStatus answer at once (getCaseStatus once the case is graded). */
const COMMAND_TIMEOUT_MS = 30_000;
/** updateReports writes an HTML and a JSON report per case (1034 files for a full run) before closing. */
const REPORT_TIMEOUT_MS = 300_000;
/** After a case timed out: time for our close handshake before the connection is dropped. */
const CLOSE_GRACE_MS = 5_000;

const USAGE = `usage: npm run autobahn:client -- [--url ws://127.0.0.1:9001] [--agent rfc6455]
                               [--cases PATTERN[,PATTERN]]... [--case-timeout SECONDS] [--timeout SECONDS]
  --url           the fuzzingserver (a loopback address only); default ${DEFAULT_URL}
  --agent         the name the report files are given; default ${DEFAULT_AGENT}
  --cases         Autobahn case ids or patterns (1.*, 6.4.*, 7.9.1); default every case of the spec
  --case-timeout  seconds a case may take before it is closed; default ${DEFAULT_CASE_TIMEOUT_S}
  --timeout       seconds the whole run may take; no case starts after it; default ${DEFAULT_RUN_TIMEOUT_S}`;

class UsageError extends Error {}

class Timeout extends Error {}

interface RunnerOptions {
  /** `ws://host:port`, without a path. */
  readonly base: string;
  readonly agent: string;
  readonly patterns: readonly string[];
  readonly caseTimeoutMs: number;
  readonly runTimeoutMs: number;
}

interface CaseOutcome {
  readonly number: number;
  readonly id: string;
  /** Messages received and sent back. */
  readonly echoed: number;
  /** How the connection ended, from the client's side. */
  readonly ending: string;
  readonly timedOut: boolean;
  /** The fuzzingserver's verdict (/getCaseStatus), or why there is none. */
  readonly behavior: string;
  readonly milliseconds: number;
}

function positiveSeconds(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback * 1000;
  const seconds = Number(value);
  if (!(seconds > 0) || !Number.isFinite(seconds)) {
    throw new UsageError(`--${name} must be a positive number of seconds, not ${value}`);
  }
  return seconds * 1000;
}

/** 127.0.0.0/8 or ::1, written as an address: a name could resolve anywhere. */
function isLoopbackAddress(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1');
}

function fuzzingServerBase(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url is not a URL: ${url}`);
  }
  // The fuzzingserver is a plain ws:// endpoint; its commands are paths of its own, so the URL names
  // only the host and the port.
  if (parsed.protocol !== 'ws:') throw new UsageError(`--url must be a ws:// URL, not ${url}`);
  if (!isLoopbackAddress(parsed.hostname)) {
    throw new UsageError(`--url must be a loopback address (127.0.0.1), not ${parsed.hostname}`);
  }
  if (parsed.pathname !== '/' || parsed.search !== '') throw new UsageError(`--url takes no path or query: ${url}`);
  return `ws://${parsed.host}`;
}

function parseOptions(argv: readonly string[]): RunnerOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        url: { type: 'string', default: DEFAULT_URL },
        agent: { type: 'string', default: DEFAULT_AGENT },
        cases: { type: 'string', multiple: true },
        'case-timeout': { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return 'help';
  // The agent names the report files (rfc6455_case_1_1_1.json) and keys index.json.
  if (!/^[A-Za-z0-9._-]+$/.test(values.agent)) {
    throw new UsageError(`--agent must be letters, digits, '.', '_' or '-', not ${values.agent}`);
  }
  return {
    base: fuzzingServerBase(values.url),
    agent: values.agent,
    patterns: (values.cases ?? []).flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p !== ''),
    caseTimeoutMs: positiveSeconds(values['case-timeout'], DEFAULT_CASE_TIMEOUT_S, 'case-timeout'),
    runTimeoutMs: positiveSeconds(values.timeout, DEFAULT_RUN_TIMEOUT_S, 'timeout'),
  };
}

/** `promise`, or a Timeout after `milliseconds`. */
function within<T>(promise: Promise<T>, milliseconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout(`${what}: no answer within ${milliseconds / 1000} s`)), milliseconds);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How a connection ended, in the words of the report lines. */
function describeEnding(error: unknown): string {
  if (!(error instanceof WebSocketDisconnect)) return `error: ${describeError(error)}`;
  const by = error.initiator === 'local' ? 'closed by us' : error.initiator === 'peer' ? 'closed by the server' : 'TCP lost';
  return error.reason === '' ? `${by} ${error.code}` : `${by} ${error.code} (${error.reason})`;
}

/**
 * A fuzzingserver command: connects to `path`, returns the text message it answers with (or null for
 * a command that answers none) and waits for the server's close, which ends every command.
 */
async function command(base: string, path: string, expectReply: boolean, timeoutMs: number): Promise<string | null> {
  const ws = await connect(`${base}${path}`, { handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  const exchange = async (): Promise<string | null> => {
    let reply: string | null = null;
    try {
      for (;;) {
        const message = await ws.receive();
        if (message.binary) throw new TypeError(`${path}: the fuzzingserver answered with a binary message`);
        reply = message.text;
      }
    } catch (error) {
      if (!(error instanceof WebSocketDisconnect)) throw error;
      // RFC 6455 §7.1.5: the server's close frame (1000, or none: 1005) ends the command normally.
      const normal = error.code === CloseCode.NormalClosure || error.code === CloseCode.NoStatusReceived;
      if (error.initiator !== 'peer' || !normal) {
        throw new Error(`${path}: ${describeEnding(error)}`);
      }
    }
    if (expectReply && reply === null) throw new Error(`${path}: the fuzzingserver closed without an answer`);
    return reply;
  };
  try {
    return await within(exchange(), timeoutMs, path);
  } finally {
    await within(ws.close(), CLOSE_GRACE_MS, `${path} close`).catch(() => ws.terminate());
  }
}

async function caseCount(base: string): Promise<number> {
  const reply = await command(base, '/getCaseCount', true, COMMAND_TIMEOUT_MS);
  const count = JSON.parse(reply!) as unknown;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) throw new TypeError(`/getCaseCount answered ${reply}`);
  return count;
}

async function caseId(base: string, number: number): Promise<string> {
  const reply = await command(base, `/getCaseInfo?case=${number}`, true, COMMAND_TIMEOUT_MS);
  const info = JSON.parse(reply!) as { id?: unknown };
  if (typeof info.id !== 'string') throw new TypeError(`/getCaseInfo?case=${number} answered ${reply}`);
  return info.id;
}

async function caseBehavior(options: RunnerOptions, number: number): Promise<string> {
  try {
    const reply = await command(options.base, `/getCaseStatus?case=${number}&agent=${options.agent}`, true, COMMAND_TIMEOUT_MS);
    const status = JSON.parse(reply!) as { behavior?: unknown };
    return typeof status.behavior === 'string' ? status.behavior : '?';
  } catch (error) {
    return `? (${describeError(error)})`;
  }
}

/** One case: echo every message, text as text and binary as binary, until the connection closes. */
async function runCase(options: RunnerOptions, number: number, id: string): Promise<CaseOutcome> {
  const started = performance.now();
  let echoed = 0;
  let timedOut = false;
  const outcome = async (ending: string): Promise<CaseOutcome> => {
    const milliseconds = Math.round(performance.now() - started);
    return { number, id, echoed, ending, timedOut, behavior: await caseBehavior(options, number), milliseconds };
  };
  let ws;
  try {
    ws = await connect(`${options.base}/runCase?case=${number}&agent=${options.agent}`, {
      maxMessageSize: MAX_MESSAGE_SIZE,
      perMessageDeflate: true,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
  } catch (error) {
    return outcome(`no connection: ${describeError(error)}`);
  }
  const connection = ws;
  const echo = async (): Promise<string> => {
    try {
      for (;;) {
        // A Message carries its type, so send() answers text with text and binary with binary.
        const message = await connection.receive();
        await connection.send(message);
        echoed++;
      }
    } catch (error) {
      return describeEnding(error);
    }
  };
  let ending: string;
  try {
    ending = await within(echo(), options.caseTimeoutMs, `case ${id}`);
  } catch (error) {
    if (!(error instanceof Timeout)) throw error;
    timedOut = true;
    ending = `timed out after ${options.caseTimeoutMs / 1000} s`;
    // 1001: this side goes away from a case that does not end; the report keeps what happened so far.
    const closing = connection.close(CloseCode.GoingAway, 'case timeout');
    await within(closing, CLOSE_GRACE_MS, 'close').catch(() => connection.terminate());
  }
  // The server grades a case when its TCP connection is gone, so the verdict is asked for after that.
  await within(connection.whenClosed(), CLOSE_GRACE_MS, 'close').catch(() => connection.terminate());
  return outcome(ending);
}

function formatOutcome(outcome: CaseOutcome, index: number, total: number): string {
  const position = `[${String(index).padStart(String(total).length)}/${total}]`;
  const messages = `${outcome.echoed} echoed`.padStart(12);
  const verdict = `${outcome.id.padEnd(8)} ${outcome.behavior.padEnd(13)}`;
  return `${position} ${verdict} ${messages}  ${outcome.ending}  ${outcome.milliseconds} ms`;
}

async function run(options: RunnerOptions): Promise<number> {
  const deadline = performance.now() + options.runTimeoutMs;
  let count: number;
  try {
    count = await caseCount(options.base);
  } catch (error) {
    console.error(`autobahn:client: no fuzzingserver at ${options.base}: ${describeError(error)}`);
    return 2;
  }
  console.log(`autobahn:client: ${count} case(s) at ${options.base}, agent ${options.agent}`);

  // The case numbers are positions in the spec's sorted case list; their ids come from /getCaseInfo.
  const selected: { number: number; id: string }[] = [];
  for (let number = 1; number <= count; number++) {
    const id = await caseId(options.base, number);
    if (options.patterns.length === 0 || options.patterns.some((p) => matchesCasePattern(id, p))) selected.push({ number, id });
  }
  if (selected.length === 0) {
    console.error(`autobahn:client: no case of the fuzzingserver's spec matches ${options.patterns.join(', ')}`);
    return 2;
  }

  const outcomes: CaseOutcome[] = [];
  const started = performance.now();
  for (const { number, id } of selected) {
    if (performance.now() > deadline) break;
    const outcome = await runCase(options, number, id);
    outcomes.push(outcome);
    console.log(formatOutcome(outcome, outcomes.length, selected.length));
  }
  const minutes = ((performance.now() - started) / 60_000).toFixed(1);

  let reportsWritten = true;
  try {
    await command(options.base, `/updateReports?agent=${options.agent}`, false, REPORT_TIMEOUT_MS);
  } catch (error) {
    reportsWritten = false;
    console.error(`autobahn:client: /updateReports failed: ${describeError(error)}`);
  }

  const behaviors = new Map<string, number>();
  for (const outcome of outcomes) behaviors.set(outcome.behavior, (behaviors.get(outcome.behavior) ?? 0) + 1);
  const tally = [...behaviors].sort(([a], [b]) => a.localeCompare(b)).map(([behavior, n]) => `${behavior} ${n}`).join(', ');
  const timedOut = outcomes.filter((o) => o.timedOut).map((o) => o.id);
  const notRun = selected.length - outcomes.length;
  console.log(
    `autobahn:client: ran ${outcomes.length} of ${selected.length} case(s) in ${minutes} min: ${tally}` +
      (timedOut.length > 0 ? `; timed out: ${timedOut.join(', ')}` : '') +
      (notRun > 0 ? `; ${notRun} not run (--timeout ${options.runTimeoutMs / 1000} s reached)` : '') +
      (reportsWritten ? '' : '; reports NOT updated'),
  );
  return timedOut.length === 0 && notRun === 0 && reportsWritten ? 0 : 1;
}

async function main(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  if (options === 'help') {
    console.log(USAGE);
    return 0;
  }
  return run(options);
}

process.exitCode = await main(process.argv.slice(2));
