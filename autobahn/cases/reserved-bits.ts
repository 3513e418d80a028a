/**
 * Section 3, Reserved Bits: without a negotiated extension every RSV bit must be 0 (RFC 6455 §5.2). A
 * frame with one set fails the connection with 1002 (or a TCP drop). Where a valid message precedes
 * it, echoing that message first is strict (OK), failing before echoing it is NON-STRICT.
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import type { WriteOptions } from '../client.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, hex, message, serverFails } from './common.ts';

const HELLO = 'Hello, world!';

function singleFrame(id: string, description: string, opcode: number, rsv: number, payload: Buffer | string): ConformanceCase {
  return {
    id,
    description,
    expectation: 'The connection is failed at once (1002 or TCP drop): RSV must be 0 without an extension.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(opcode, payload, { rsv });
      run.killAfter(1);
    },
  };
}

function afterMessage(id: string, rsv: number, how: string, write: WriteOptions): ConformanceCase {
  return {
    id,
    description: `Send a small text message, then the same with RSV = ${rsv}, then a ping${how}.`,
    expectation: 'The first message is echoed, then the connection is failed (1002 or TCP drop); no pong.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message(HELLO)]);
      run.expect('NON-STRICT', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Text, HELLO, write);
      run.client.sendFrame(Opcode.Text, HELLO, { rsv, ...write });
      run.client.sendFrame(Opcode.Ping, '', write);
      run.killAfter(1);
    },
  };
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
