/**
 * Section 3, Reserved Bits: without a negotiated extension every RSV bit must be 0 (RFC 6455 §5.2). A
 * frame with one set fails the connection with 1002 (or a TCP drop). Where a valid message precedes
 * it, echoing that message first is strict (OK), failing before echoing it is NON-STRICT.
 */
import { Opcode } from '../../src/constants.ts';
import type { WriteOptions } from '../client.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, failsAfterMessage, failsOnFrame, hex, HELLO } from './common.ts';

function singleFrame(id: string, description: string, opcode: number, rsv: number, payload: Buffer | string): ConformanceCase {
  return failsOnFrame(
    id,
    description,
    'The connection is failed at once (1002 or TCP drop): RSV must be 0 without an extension.',
    { opcode, payload, rsv },
  );
}

function afterMessage(id: string, rsv: number, how: string, write: WriteOptions): ConformanceCase {
  return failsAfterMessage(
    id,
    `Send a small text message, then the same with RSV = ${rsv}, then a ping${how}.`,
    'The first message is echoed, then the connection is failed (1002 or TCP drop); no pong.',
    { opcode: Opcode.Text, payload: HELLO, rsv },
    write,
  );
}

export default cases([
  singleFrame('3.1', 'Send a small text message with RSV = 1.', Opcode.Text, 1, HELLO),
  afterMessage('3.2', 2, ', all in one write', {}),
  afterMessage('3.3', 3, ', one write per frame', { sync: true }),
  afterMessage('3.4', 4, ', every byte in its own write', { chop: 1 }),
  singleFrame('3.5', 'Send a small binary message with RSV = 5.', Opcode.Binary, 5, hex('00 ff fe fd fc fb 00 ff')),
  // Autobahn describes 3.6 as a ping but sends a binary frame: the bytes sent are what is replayed.
  singleFrame('3.6', 'Send a small binary frame with RSV = 6.', Opcode.Binary, 6, HELLO),
  singleFrame('3.7', 'Send a close frame with RSV = 7.', Opcode.Close, 7, ''),
]);
