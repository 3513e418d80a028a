/**
 * Helpers shared by the case files: event constructors, payload builders and the expected closes that
 * recur across sections.
 */
import { CloseCode } from '../../src/constants.ts';
import { Opcode } from '../../src/constants.ts';
import { bytesOf, type FrameOptions, type ObservedMessage, type ObservedPong, type ObservedTimeout, type WriteOptions } from '../client.ts';
import { Behavior, CloseBehavior, type ConformanceCase, type ExpectedClose, type Verdict } from '../harness.ts';

export const message = (data: Uint8Array | string, binary = false): ObservedMessage => ({
  kind: 'message',
  data: Buffer.from(bytesOf(data)),
  binary,
});

export const pong = (data: Uint8Array | string = ''): ObservedPong => ({ kind: 'pong', data: Buffer.from(bytesOf(data)) });

export const timeout = (tag: string): ObservedTimeout => ({ kind: 'timeout', tag });

/** Bytes from hex, spaces allowed: `hex('ce ba')`. */
export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** `pattern` repeated (and cut) to exactly `length` bytes, as Autobahn's `payload_len` does. */
export function repeatTo(pattern: Uint8Array | string, length: number): Buffer {
  const unit = bytesOf(pattern);
  const out = Buffer.allocUnsafe(length);
  if (length === 0) return out;
  out.set(unit.subarray(0, Math.min(unit.length, length)), 0);
  // Double the filled prefix until the buffer is full.
  for (let filled = Math.min(unit.length, length); filled < length; filled *= 2) {
    out.copy(out, filled, 0, Math.min(filled, length - filled));
  }
  return out;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** The client closes with 1000 once the expected events have arrived; the close must be clean. */
export const normalClose: ExpectedClose = { closedByMe: true, codes: [CloseCode.NormalClosure], requireClean: true };

/** The server fails the connection: close frame with `code`, or a dropped TCP connection. */
export const serverFails = (code: number): ExpectedClose => ({ closedByMe: false, codes: [code], requireClean: false });

/** The server fails the connection over invalid UTF-8: 1007 or a drop, and it must be the server that does it. */
export const serverFailsUtf8: ExpectedClose = {
  closedByMe: false,
  codes: [CloseCode.InvalidFramePayloadData],
  requireClean: false,
  closedByWrongEndpointIsFatal: true,
};

/** Section 7's rule: an answer with a close code that is not allowed fails the case. */
export function wrongCodeIsFatal(verdict: Verdict): void {
  if (verdict.behaviorClose === CloseBehavior.WrongCode) {
    verdict.behavior = Behavior.Failed;
    verdict.result = verdict.resultClose;
  }
}

/** The small text message sections 3 and 4 send before a bad frame. */
export const HELLO = 'Hello, world!';

/** A frame the server must refuse: its opcode, payload and RSV bits. */
export interface BadFrame {
  readonly opcode: number;
  readonly payload: Uint8Array | string;
  readonly rsv?: number;
}

/** Sends one bad frame: the server must fail the connection at once (1002 or a TCP drop). */
export function failsOnFrame(id: string, description: string, expectation: string, frame: BadFrame): ConformanceCase {
  return {
    id,
    description,
    expectation,
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(frame.opcode, frame.payload, { rsv: frame.rsv ?? 0 });
      run.killAfter(1);
    },
  };
}

/**
 * Sends a valid text message, a bad frame and a ping: echoing the message before failing the
 * connection (1002 or a TCP drop) is OK, failing before echoing it is NON-STRICT; no pong.
 */
export function failsAfterMessage(
  id: string,
  description: string,
  expectation: string,
  frame: BadFrame,
  write: WriteOptions,
): ConformanceCase {
  const badFrameOptions: FrameOptions & WriteOptions = { rsv: frame.rsv ?? 0, ...write };
  return {
    id,
    description,
    expectation,
    quick: true,
    onOpen(run) {
      run.expect('OK', [message(HELLO)]);
      run.expect('NON-STRICT', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Text, HELLO, write);
      run.client.sendFrame(frame.opcode, frame.payload, badFrameOptions);
      run.client.sendFrame(Opcode.Ping, '', write);
      run.killAfter(1);
    },
  };
}

/** Identity function that checks a list of cases against the type. */
export const cases = (list: readonly ConformanceCase[]): readonly ConformanceCase[] => list;
