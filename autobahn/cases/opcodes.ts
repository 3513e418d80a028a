/**
 * Section 4, Opcodes: reserved data opcodes 3-7 (4.1.x) and reserved control opcodes 11-15 (4.2.x)
 * fail the connection with 1002 (or a TCP drop), RFC 6455 §5.2. Where a valid message precedes the bad
 * frame, echoing it first is strict (OK), failing before echoing it is NON-STRICT.
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import type { WriteOptions } from '../client.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, message, serverFails } from './common.ts';

const HELLO = 'Hello, world!';

function alone(id: string, opcode: number, payload: string): ConformanceCase {
  const kind = opcode < 8 ? 'non-control' : 'control';
  return {
    id,
    description: `Send a frame with the reserved ${kind} opcode ${opcode}${payload === '' ? '' : ' and a payload'}.`,
    expectation: 'The connection is failed at once (1002 or TCP drop).',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(opcode, payload);
      run.killAfter(1);
    },
  };
}

function afterMessage(id: string, opcode: number, payload: string, write: WriteOptions): ConformanceCase {
  const kind = opcode < 8 ? 'non-control' : 'control';
  return {
    id,
    description:
      `Send a small text message, then a frame with the reserved ${kind} opcode ${opcode}` +
      `${payload === '' ? '' : ' and a payload'}, then a ping${write.chop === 1 ? ', every byte in its own write' : ''}.`,
    expectation: 'The message is echoed, then the connection is failed (1002 or TCP drop); no pong.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message(HELLO)]);
      run.expect('NON-STRICT', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Text, HELLO, write);
      run.client.sendFrame(opcode, payload, write);
      run.client.sendFrame(Opcode.Ping, '', write);
      run.killAfter(1);
    },
  };
}

export default cases([
  alone('4.1.1', 3, ''),
  alone('4.1.2', 4, 'reserved opcode payload'),
  afterMessage('4.1.3', 5, '', {}),
  afterMessage('4.1.4', 6, HELLO, {}),
  afterMessage('4.1.5', 7, HELLO, { chop: 1 }),
  alone('4.2.1', 11, ''),
  alone('4.2.2', 12, 'reserved opcode payload'),
  afterMessage('4.2.3', 13, '', {}),
  afterMessage('4.2.4', 14, HELLO, {}),
  afterMessage('4.2.5', 15, HELLO, { chop: 1 }),
]);
