/**
 * Section 9, Limits/Performance: large messages echoed unchanged, with the time each case took.
 *
 * - 9.1 / 9.2: one text / binary frame of 64 KiB, 256 KiB, 1, 4, 8 and 16 MiB;
 * - 9.3 / 9.4: a 4 MiB text / binary message in fragments of 64 B to 4 MiB (9.3.1 and 9.4.1 are 65,536
 *   fragments: a server that caps the fragment count fails them);
 * - 9.5 / 9.6: a 1 MiB text / binary frame written in chops of 64 to 2048 bytes;
 * - 9.7 / 9.8: 1000 text / binary messages of 0 to 4096 bytes, one at a time (round-trip latency).
 *
 * These cases grade themselves as Autobahn's do: OK when the echo arrives in time with the right type
 * and length. The conformance suite also checks the echoed bytes.
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import type { ObservedMessage } from '../client.ts';
import { Behavior, type CaseRun, type ConformanceCase, type Verdict } from '../harness.ts';
import { KiB, MiB, cases, normalClose, repeatTo } from './common.ts';

const TEXT_PATTERN = 'BAsd7&jh23';
const BINARY_PATTERN = Buffer.of(0x00, 0xfe, 0x23, 0xfa, 0xf0);

function size(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB} MiB` : bytes >= KiB ? `${bytes / KiB} KiB` : `${bytes} B`;
}

/** Grades the echo of `sent`, then closes (Autobahn closes after the first message, right or wrong). */
function checkEcho(run: CaseRun, received: ObservedMessage, sent: Buffer, binary: boolean): void {
  const kind = binary ? 'binary' : 'text';
  if (received.binary !== binary) {
    run.result = `Expected a ${kind} message, got a ${received.binary ? 'binary' : 'text'} one.`;
  } else if (received.data.length !== sent.length) {
    run.result = `Expected a ${kind} message of ${sent.length} bytes, got ${received.data.length}.`;
  } else if (!received.data.equals(sent)) {
    run.result = `The ${kind} message of ${sent.length} bytes came back with different bytes.`;
  } else {
    run.behavior = Behavior.OK;
    run.result = `Received the ${kind} message of ${sent.length} bytes unchanged.`;
  }
  run.client.sendClose(CloseCode.NormalClosure);
}

/** A clearer result when the server closed instead of echoing (ws closes 9.3.1 with 1008, for one). */
function explainEarlyClose(verdict: Verdict, run: CaseRun): void {
  const code = run.client.remoteCloseCode;
  if (verdict.behavior === Behavior.Failed && run.received.length === 0 && code !== null && run.client.closedByMe === false) {
    const reason = run.client.remoteCloseReason === null || run.client.remoteCloseReason === '' ? '' : ` "${run.client.remoteCloseReason}"`;
    verdict.result = `The server closed the connection with ${code}${reason} instead of echoing the message.`;
  }
}

interface LargeMessage {
  readonly id: string;
  readonly binary: boolean;
  readonly length: number;
  /** Split into frames of this size (9.3, 9.4). */
  readonly fragmentSize?: number;
  /** Written in chops of this size (9.5, 9.6). */
  readonly chop?: number;
  readonly waitSeconds: number;
  readonly quick?: boolean;
}

function largeMessage(spec: LargeMessage): ConformanceCase {
  const kind = spec.binary ? 'binary' : 'text';
  const how =
    spec.fragmentSize !== undefined
      ? `, in fragments of ${size(spec.fragmentSize)}`
      : spec.chop !== undefined
        ? `, written in chops of ${spec.chop} bytes`
        : '';
  // Autobahn fills fragmented messages with one repeated byte and the others with a short pattern.
  const fill = spec.fragmentSize !== undefined ? (spec.binary ? Buffer.of(0xfe) : '*') : spec.binary ? BINARY_PATTERN : TEXT_PATTERN;
  const payloads = new WeakMap<CaseRun, Buffer>();
  return {
    id: spec.id,
    description: `Send a ${kind} message of ${size(spec.length)}${how}.`,
    expectation: `The ${kind} message comes back unchanged within ${spec.waitSeconds} s; clean close with 1000.`,
    reportTime: true,
    limit: spec.waitSeconds + 30,
    ...(spec.quick === true ? { quick: true } : {}),
    onOpen(run) {
      const payload = repeatTo(fill, spec.length);
      payloads.set(run, payload);
      run.behavior = Behavior.Failed;
      run.result = `Did not receive the message within ${spec.waitSeconds} s.`;
      run.expectClose(normalClose);
      if (spec.fragmentSize !== undefined) run.client.sendMessage(payload, spec.binary, spec.fragmentSize);
      else run.client.sendFrame(spec.binary ? Opcode.Binary : Opcode.Text, payload, spec.chop === undefined ? {} : { chop: spec.chop });
      run.closeAfter(spec.waitSeconds);
    },
    onMessage(run, received) {
      run.received.push(received);
      checkEcho(run, received, payloads.get(run)!, spec.binary);
    },
    finish: explainEarlyClose,
  };
}

function roundTrips(id: string, binary: boolean, length: number, waitSeconds: number): ConformanceCase {
  const kind = binary ? 'binary' : 'text';
  const COUNT = 1000;
  const payload = repeatTo(binary ? Buffer.of(0xfe) : '*', length);
  /** Messages sent so far, per run. */
  const sent = new WeakMap<CaseRun, number>();
  const sendOne = (run: CaseRun): void => {
    run.client.sendFrame(binary ? Opcode.Binary : Opcode.Text, payload);
    sent.set(run, (sent.get(run) ?? 0) + 1);
  };
  return {
    id,
    description: `Send ${COUNT} ${kind} messages of ${length} bytes, each after the echo of the previous one (round-trip time).`,
    expectation: `Every ${kind} message comes back unchanged; the case ends within ${waitSeconds} s.`,
    reportTime: true,
    quick: length <= 64,
    limit: waitSeconds + 30,
    onOpen(run) {
      run.behavior = Behavior.Failed;
      run.result = `The case did not finish within ${waitSeconds} s.`;
      run.expectClose(normalClose);
      run.closeAfter(waitSeconds);
      sendOne(run);
    },
    finish: explainEarlyClose,
    onMessage(run, received) {
      if (received.binary !== binary || !received.data.equals(payload)) {
        run.behavior = Behavior.Failed;
        run.result = `Echo ${sent.get(run)} differs from what was sent (binary ${received.binary}, ${received.data.length} bytes).`;
        run.client.sendClose(CloseCode.NormalClosure);
      } else if ((sent.get(run) ?? 0) < COUNT) {
        sendOne(run);
      } else {
        run.behavior = Behavior.OK;
        run.result = `All ${COUNT} messages came back in time.`;
        run.client.sendClose(CloseCode.NormalClosure);
      }
    },
  };
}

const SINGLE_SIZES: readonly (readonly [bytes: number, wait: number])[] = [
  [64 * KiB, 10],
  [256 * KiB, 10],
  [1 * MiB, 100],
  [4 * MiB, 100],
  [8 * MiB, 100],
  [16 * MiB, 100],
];
const FRAGMENT_SIZES = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB];
const CHOP_SIZES = [64, 128, 256, 512, 1024, 2048];
const ROUND_TRIP_SIZES: readonly (readonly [bytes: number, wait: number])[] = [
  [0, 60],
  [16, 60],
  [64, 60],
  [256, 120],
  [1024, 240],
  [4096, 480],
];

export default cases([
  ...([false, true] as const).flatMap((binary) =>
    SINGLE_SIZES.map(([length, wait], i) =>
      largeMessage({ id: `9.${binary ? 2 : 1}.${i + 1}`, binary, length, waitSeconds: wait, quick: i === 0 }),
    ),
  ),
  ...([false, true] as const).flatMap((binary) =>
    FRAGMENT_SIZES.map((fragmentSize, i) =>
      // 9.3.1 / 9.4.1 (65,536 fragments) are quick: they catch a fragment-count cap.
      largeMessage({ id: `9.${binary ? 4 : 3}.${i + 1}`, binary, length: 4 * MiB, fragmentSize, waitSeconds: 100, quick: i === 0 }),
    ),
  ),
  ...([false, true] as const).flatMap((binary) =>
    CHOP_SIZES.map((chop, i) => largeMessage({ id: `9.${binary ? 6 : 5}.${i + 1}`, binary, length: 1 * MiB, chop, waitSeconds: 1000 })),
  ),
  ...([false, true] as const).flatMap((binary) =>
    ROUND_TRIP_SIZES.map(([length, wait], i) => roundTrips(`9.${binary ? 8 : 7}.${i + 1}`, binary, length, wait)),
  ),
]);
