/**
 * Section 5, Fragmentation (RFC 6455 §5.4): control frames may not be fragmented (5.1, 5.2); a
 * fragmented message is reassembled whatever the TCP writes look like (5.3-5.5), also with a ping
 * between its fragments, answered before the message ends (5.6-5.8, 5.19, 5.20); a continuation frame
 * with nothing to continue, or a new data frame inside a fragmented message, fails the connection
 * (5.9-5.18).
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import type { WriteOptions } from '../client.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, message, normalClose, pong, serverFails } from './common.ts';

const HOW: Readonly<Record<string, string>> = {
  one: 'all in one write',
  frame: 'one write per frame',
  byte: 'every byte in its own write',
};

function writeOf(how: keyof typeof HOW): WriteOptions {
  return how === 'frame' ? { sync: true } : how === 'byte' ? { chop: 1 } : {};
}

function fragmentedControl(id: string, opcode: number, name: string): ConformanceCase {
  return {
    id,
    description: `Send a ${name} fragmented into 2 fragments.`,
    expectation: 'The connection is failed at once (1002 or TCP drop): control frames must not be fragmented.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(opcode, 'fragment1', { fin: false });
      run.client.sendFrame(Opcode.Continuation, 'fragment2');
      run.killAfter(1);
    },
  };
}

function twoFragments(id: string, how: keyof typeof HOW): ConformanceCase {
  return {
    id,
    description: `Send a text message in 2 fragments, ${HOW[how]}.`,
    expectation: 'The message is reassembled and echoed; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message('fragment1fragment2')]);
      run.expectClose(normalClose);
      const write = writeOf(how);
      run.client.sendFrame(Opcode.Text, 'fragment1', { fin: false, ...write });
      run.client.sendFrame(Opcode.Continuation, 'fragment2', write);
      run.closeAfter(1);
    },
  };
}

function pingBetween(id: string, how: keyof typeof HOW): ConformanceCase {
  return {
    id,
    description: `Send a text message in 2 fragments with a ping between them, ${HOW[how]}.`,
    expectation: 'The pong comes first, then the echoed message; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [pong('ping payload'), message('fragment1fragment2')]);
      run.expectClose(normalClose);
      const write = writeOf(how);
      run.client.sendFrame(Opcode.Text, 'fragment1', { fin: false, ...write });
      run.client.sendFrame(Opcode.Ping, 'ping payload', write);
      run.client.sendFrame(Opcode.Continuation, 'fragment2', write);
      run.closeAfter(1);
    },
  };
}

function nothingToContinue(id: string, fin: boolean, how: keyof typeof HOW): ConformanceCase {
  return {
    id,
    description: `Send a continuation frame with FIN = ${fin} where there is nothing to continue, then a text message, ${HOW[how]}.`,
    expectation: 'The connection is failed at once (1002 or TCP drop): there is no message to continue.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      const write = writeOf(how);
      run.client.sendFrame(Opcode.Continuation, 'non-continuation payload', { fin, ...write });
      run.client.sendFrame(Opcode.Text, 'Hello, world!', write);
      run.killAfter(1);
    },
  };
}

function repeatedBadStart(id: string, fin: boolean): ConformanceCase {
  return {
    id,
    description: `Twice: a continuation frame with FIN = ${fin} (nothing to continue), then a text message in 2 fragments.`,
    expectation: 'The connection is failed at once (1002 or TCP drop): there is no message to continue.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      for (let i = 0; i < 2; i++) {
        run.client.sendFrame(Opcode.Continuation, 'fragment1', { fin });
        run.client.sendFrame(Opcode.Text, 'fragment2', { fin: false });
        run.client.sendFrame(Opcode.Continuation, 'fragment3');
      }
      run.killAfter(1);
    },
  };
}

function pingsWhileFragmented(id: string, sync: boolean): ConformanceCase {
  const fragments = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5'] as const;
  const pings = ['pongme 1!', 'pongme 2!'] as const;
  return {
    id,
    description:
      'Send 2 fragments of a text message and a ping, wait 1 s, then 2 more fragments, another ping and the ' +
      `last fragment${sync ? ', one write per frame' : ''}.`,
    expectation: 'The first ping is answered before the message is complete; both pongs, then the echoed message.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [pong(pings[0]), pong(pings[1]), message(fragments.join(''))]);
      run.expectClose(normalClose);
      const write: WriteOptions = { sync };
      run.client.sendFrame(Opcode.Text, fragments[0], { fin: false, ...write });
      run.client.sendFrame(Opcode.Continuation, fragments[1], { fin: false, ...write });
      run.client.sendFrame(Opcode.Ping, pings[0], write);
      run.continueLater(1, () => {
        run.client.sendFrame(Opcode.Continuation, fragments[2], { fin: false, ...write });
        run.client.sendFrame(Opcode.Continuation, fragments[3], { fin: false, ...write });
        run.client.sendFrame(Opcode.Ping, pings[1], write);
        run.client.sendFrame(Opcode.Continuation, fragments[4], write);
        run.closeAfter(1);
      });
    },
  };
}

export default cases([
  fragmentedControl('5.1', Opcode.Ping, 'ping'),
  fragmentedControl('5.2', Opcode.Pong, 'pong'),
  twoFragments('5.3', 'one'),
  twoFragments('5.4', 'frame'),
  twoFragments('5.5', 'byte'),
  pingBetween('5.6', 'one'),
  pingBetween('5.7', 'frame'),
  pingBetween('5.8', 'byte'),
  nothingToContinue('5.9', true, 'one'),
  nothingToContinue('5.10', true, 'frame'),
  nothingToContinue('5.11', true, 'byte'),
  nothingToContinue('5.12', false, 'one'),
  nothingToContinue('5.13', false, 'frame'),
  nothingToContinue('5.14', false, 'byte'),
  {
    id: '5.15',
    description:
      'Send a text message in 2 fragments, then a continuation frame with FIN = false where there is nothing ' +
      'to continue, then a text message, all in one write.',
    expectation: 'The first message is echoed, then the connection is failed (1002 or TCP drop).',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message('fragment1fragment2')]);
      run.expect('NON-STRICT', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Text, 'fragment1', { fin: false });
      run.client.sendFrame(Opcode.Continuation, 'fragment2');
      run.client.sendFrame(Opcode.Continuation, 'fragment3', { fin: false });
      run.client.sendFrame(Opcode.Text, 'fragment4');
      run.killAfter(1);
    },
  },
  repeatedBadStart('5.16', false),
  repeatedBadStart('5.17', true),
  {
    id: '5.18',
    description: 'Send a text message in 2 fragments whose frames both have the text opcode, all in one write.',
    expectation: 'The connection is failed at once (1002 or TCP drop): fragments after the first have opcode 0.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Text, 'fragment1', { fin: false });
      run.client.sendFrame(Opcode.Text, 'fragment2');
      run.killAfter(1);
    },
  },
  pingsWhileFragmented('5.19', false),
  pingsWhileFragmented('5.20', true),
]);
