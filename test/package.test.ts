/**
 * The package as a new user gets it: `npm pack` (prepack builds dist/), the tarball installed into an
 * empty project, then used from child `node` processes. Proves that `require()` (Node >= 20.19 loads
 * the ESM through the `default` condition) and `import` both work, for the root (the user API) and
 * for `rfc6455/protocol` (the sans-I/O building blocks, on the subpath only), as one module graph; that
 * a server starts and closes from the installed package; that the tarball ships dist/, README.md and
 * package.json only; and that the published types have the `@internal` members stripped and still
 * type-check in a consumer project.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = dirname(dirname(fileURLToPath(import.meta.url)));
const PACK_TIMEOUT = 45_000; // npm pack runs prepack → tsc -p tsconfig.build.json
const INSTALL_TIMEOUT = 30_000;
const NODE_TIMEOUT = 10_000;
const TSC_TIMEOUT = 30_000;

/** The user API, on the root. */
const ROOT_NAMES = ['WebSocketServer', 'serve', 'WebSocket', 'WebSocketException', 'WebSocketDisconnect', 'CloseCode'];
/** Building blocks, on `rfc6455/protocol` only. */
const PROTOCOL_NAMES = ['Protocol', 'FrameParser', 'acceptKey', 'mask'];
const PROTOCOL_ONLY = ['Protocol', 'FrameParser', 'mask'];

/**
 * The environment for npm and node children: without the npm_* variables an enclosing `npm test` sets
 * (npm_config_local_prefix and the like must not steer the nested npm towards the repository), and with
 * an npm cache inside the temp dir (nothing written to ~/.npm).
 */
function childEnv(cache: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.toLowerCase().startsWith('npm_')) env[key] = value;
  }
  env['npm_config_cache'] = cache;
  env['npm_config_update_notifier'] = 'false';
  return env;
}

/** Member names declared right after a `/** @internal ... *\/` comment in a source file. */
function internalMembers(source: string): string[] {
  const names = new Set<string>();
  const pattern =
    /\/\*\*\s*@internal\b[^]*?\*\/\s*(?:(?:private|protected|public|static|readonly|async|get|set)\s+)*([A-Za-z_$][\w$]*)\s*[(<:?]/g;
  for (const match of source.matchAll(pattern)) names.add(match[1]!);
  return [...names];
}

/** Whether a .d.ts declares `name` as a member (not merely mentions the word in a doc comment). */
function declaresMember(dts: string, name: string): boolean {
  const modifiers = '(?:(?:private|protected|public|static|readonly|declare|get|set)\\s+)*';
  return new RegExp(`^\\s*${modifiers}${name}\\s*[?!]?\\s*[(<:;=]`, 'm').test(dts);
}

describe('the packed tarball, installed into a fresh project', () => {
  let work = '';
  let tarball = '';
  let project = '';
  let env: NodeJS.ProcessEnv = {};

  /** Runs `node file` in the project; its stdout, one JSON value, parsed. */
  function runNode<T>(file: string, source: string): T {
    writeFileSync(join(project, file), source);
    const result = spawnSync(process.execPath, [file], { cwd: project, env, encoding: 'utf8', timeout: NODE_TIMEOUT });
    assert.equal(result.error, undefined, `node ${file}: ${result.error?.message}`);
    assert.equal(result.status, 0, `node ${file} exited with ${result.status}:\n${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'rfc6455-pack-'));
    env = childEnv(join(work, 'npm-cache'));
    const packDir = join(work, 'pack');
    mkdirSync(packDir);
    execFileSync('npm', ['pack', '--pack-destination', packDir, '--silent'], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: PACK_TIMEOUT,
    });
    // The pack directory is new: its one .tgz is the tarball (stdout may also carry prepack's output).
    const packed = readdirSync(packDir).filter((name) => name.endsWith('.tgz'));
    assert.equal(packed.length, 1, `npm pack produced ${packed.join(', ') || 'nothing'}`);
    tarball = join(packDir, packed[0]!);

    project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    // No runtime dependencies: installing the tarball needs no registry, hence --offline.
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
      cwd: project,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: INSTALL_TIMEOUT,
    });
  });

  after(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });

  test('the tarball ships dist/, README.md and package.json, and no src/ or test/', () => {
    const listing = execFileSync('tar', ['-tzf', tarball], { cwd: work, encoding: 'utf8', timeout: NODE_TIMEOUT });
    const files = listing.split('\n').filter((line) => line !== '').map((line) => line.replace(/^package\//, ''));
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/protocol/index.js', 'dist/protocol/index.d.ts', 'README.md', 'package.json']) {
      assert.ok(files.includes(file), `${file} is missing from the tarball`);
    }
    assert.deepEqual(files.filter((file) => /^(src|test)\//.test(file)), []);
    assert.deepEqual(files.filter((file) => !/^dist\//.test(file) && file !== 'README.md' && file !== 'package.json'), []);
  });

  test('require() from CommonJS loads the root: the user API, without the building blocks', () => {
    const names = runNode<string[]>('root.cjs', `console.log(JSON.stringify(Object.keys(require('rfc6455'))));\n`);
    for (const name of ROOT_NAMES) assert.ok(names.includes(name), `require('rfc6455').${name} is missing`);
    for (const name of PROTOCOL_ONLY) assert.ok(!names.includes(name), `require('rfc6455').${name} should be on rfc6455/protocol only`);
  });

  test('import() from an ES module loads the root, with the same export names as require()', () => {
    const imported = runNode<string[]>('root.mjs', `console.log(JSON.stringify(Object.keys(await import('rfc6455'))));\n`);
    const required = runNode<string[]>('root-names.cjs', `console.log(JSON.stringify(Object.keys(require('rfc6455'))));\n`);
    for (const name of ROOT_NAMES) assert.ok(imported.includes(name), `import('rfc6455').${name} is missing`);
    for (const name of PROTOCOL_ONLY) assert.ok(!imported.includes(name), `import('rfc6455').${name} should be on rfc6455/protocol only`);
    assert.deepEqual([...imported].sort(), [...required].sort());
  });

  test('rfc6455/protocol loads with require() and import(), with the building blocks', () => {
    const required = runNode<string[]>('protocol.cjs', `console.log(JSON.stringify(Object.keys(require('rfc6455/protocol'))));\n`);
    const imported = runNode<string[]>(
      'protocol.mjs',
      `console.log(JSON.stringify(Object.keys(await import('rfc6455/protocol'))));\n`,
    );
    for (const name of PROTOCOL_NAMES) {
      assert.ok(required.includes(name), `require('rfc6455/protocol').${name} is missing`);
      assert.ok(imported.includes(name), `import('rfc6455/protocol').${name} is missing`);
    }
    assert.deepEqual([...imported].sort(), [...required].sort());
  });

  test('require() and import() share one module instance: no dual-package hazard', () => {
    const same = runNode<Record<string, boolean>>(
      'identity.mjs',
      [
        `import { createRequire } from 'node:module';`,
        `const require = createRequire(import.meta.url);`,
        `const root = await import('rfc6455');`,
        `const protocol = await import('rfc6455/protocol');`,
        `console.log(JSON.stringify({`,
        `  webSocket: require('rfc6455').WebSocket === root.WebSocket,`,
        `  exception: require('rfc6455').WebSocketException === root.WebSocketException,`,
        `  frameParser: require('rfc6455/protocol').FrameParser === protocol.FrameParser,`,
        `  message: root.Message === protocol.Message,`,
        `  closeCode: root.CloseCode === protocol.CloseCode,`,
        `}));`,
        ``,
      ].join('\n'),
    );
    assert.deepEqual(same, { webSocket: true, exception: true, frameParser: true, message: true, closeCode: true });
  });

  test('the installed package runs: serve() from CommonJS listens on a port and closes', () => {
    const result = runNode<{ port: number; isServer: boolean; exception: string; normalClosure: number; accept: string }>(
      'serve.cjs',
      [
        `const { serve, WebSocketServer, WebSocketException, CloseCode } = require('rfc6455');`,
        `const { acceptKey } = require('rfc6455/protocol');`,
        `(async () => {`,
        `  const server = await serve(async (ws) => {`,
        `    await ws.accept();`,
        `    for await (const m of ws) await ws.send(m);`,
        `  }, { port: 0 });`,
        `  const port = server.address().port;`,
        `  const isServer = server instanceof WebSocketServer;`,
        `  await server.close();`,
        `  console.log(JSON.stringify({`,
        `    port, isServer,`,
        `    exception: typeof WebSocketException,`,
        `    normalClosure: CloseCode.NormalClosure,`,
        `    accept: acceptKey('dGhlIHNhbXBsZSBub25jZQ=='),`,
        `  }));`,
        `})().catch((error) => { console.error(error); process.exit(1); });`,
        ``,
      ].join('\n'),
    );
    assert.equal(typeof result.port, 'number');
    assert.ok(result.port > 0);
    assert.equal(result.isServer, true);
    assert.equal(result.exception, 'function');
    assert.equal(result.normalClosure, 1000);
    assert.equal(result.accept, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='); // RFC 6455 §1.3
  });

  test('the published websocket.d.ts declares none of the @internal members of src/websocket.ts', () => {
    const internals = internalMembers(readFileSync(join(REPO, 'src/websocket.ts'), 'utf8'));
    for (const name of ['dispatchEvents', 'closeTransport', 'deliver', 'beat', 'refuse', 'preferSubprotocol', 'emitPing']) {
      assert.ok(internals.includes(name), `${name} is not marked @internal in src/websocket.ts (found ${internals.join(', ')})`);
    }
    const dts = readFileSync(join(project, 'node_modules/rfc6455/dist/websocket.d.ts'), 'utf8');
    // Declarations, not words: the doc comments may say "refuse" in prose.
    assert.deepEqual(internals.filter((name) => declaresMember(dts, name)), []);
    assert.doesNotMatch(dts, /\bwriteFrame\b/);
  });

  test('the published types type-check in a consumer project (skipLibCheck off), internals hidden', () => {
    writeFileSync(
      join(project, 'consumer.mts'),
      [
        `import { serve, CloseCode, WebSocketServer, WebSocketException, type WebSocket } from 'rfc6455';`,
        `import { Protocol, FrameParser, acceptKey, mask } from 'rfc6455/protocol';`,
        `const server: WebSocketServer = await serve(async (ws: WebSocket) => {`,
        `  await ws.accept();`,
        `  for await (const message of ws) await ws.send(message);`,
        `}, { port: 0 });`,
        `const code: number = CloseCode.NormalClosure;`,
        `const key: string = acceptKey('dGhlIHNhbXBsZSBub25jZQ==');`,
        `void [server, code, key, Protocol, FrameParser, mask, WebSocketException];`,
        `declare const ws: WebSocket;`,
        `// @ts-expect-error an @internal member is not in the published types`,
        `ws.dispatchEvents();`,
        `// @ts-expect-error an @internal member is not in the published types`,
        `ws.refuse;`,
        ``,
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'consumer-root.mts'),
      [`// @ts-expect-error the building blocks are on rfc6455/protocol only`, `import { Protocol } from 'rfc6455';`, `void Protocol;`, ``].join('\n'),
    );
    writeFileSync(
      join(project, 'consumer.cts'),
      [
        `import rfc6455 = require('rfc6455');`,
        `import protocol = require('rfc6455/protocol');`,
        `const ServerClass: typeof rfc6455.WebSocketServer = rfc6455.WebSocketServer;`,
        `const key: string = protocol.acceptKey('x');`,
        `void [ServerClass, key];`,
        ``,
      ].join('\n'),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2023',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(REPO, 'node_modules/@types')],
        },
        files: ['consumer.mts', 'consumer-root.mts', 'consumer.cts'],
      }),
    );
    const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
    const result = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: project, env, encoding: 'utf8', timeout: TSC_TIMEOUT });
    assert.equal(result.error, undefined, `tsc: ${result.error?.message}`);
    assert.equal(result.status, 0, `the published types do not type-check:\n${result.stdout}${result.stderr}`);
  });
});
