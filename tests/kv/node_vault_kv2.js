'use strict';
// node-vault, unchanged, against sealkeepd's KV v2 facade (tests/kv/kv_clients_test.cc runs it).
//
// Usage: node node_vault_kv2.js SOCKET CLIENT MODE PREFIX
//   CLIENT axios    node-vault 0.12.0 (axios since 0.10.10): its documented requestOptions.httpAgent,
//                   an http.Agent whose connections go to the Unix socket
//   CLIENT postman  node-vault 0.10.9 (postman-request): the endpoint http://unix:SOCKET: alone
//   MODE   full       write, read, list and delete, a cas conflict, health
//   MODE   forbidden  as a caller whose policy grants read, list and write on team/** only
//
// Each step prints "ok <step>"; the first failed check prints "FAIL <step>: <why>" on stderr and
// exits 1. Exit 3: node-vault is not installed. The secrets are made here, never passed in.
const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const net = require('net');
const path = require('path');

const [sock, variant, mode, prefix] = process.argv.slice(2);
if (!sock || !['axios', 'postman'].includes(variant) || !['full', 'forbidden'].includes(mode) || !prefix) {
  console.error('usage: node node_vault_kv2.js SOCKET axios|postman full|forbidden PREFIX');
  process.exit(2);
}

function load(name) {
  try {
    return require(path.join(__dirname, 'node', 'node_modules', name));
  } catch (e) {
    console.error(`${name} is not installed (${e.code || e.message}): run tools/dev test-deps ` +
                  '(npm ci in tests/kv/node)');
    process.exit(3);
  }
}

function makeClient(extra = {}) {
  const config = { token: 's.ignored-by-sealkeep', ...extra };
  if (variant === 'axios') {
    const agent = new http.Agent({ keepAlive: false });
    agent.createConnection = () => net.createConnection({ path: sock });
    return load('node-vault')({ ...config, endpoint: 'http://sealkeep', requestOptions: { httpAgent: agent } });
  }
  return load('node-vault-postman')({ ...config, endpoint: `http://unix:${sock}:` });
}

const vault = makeClient();

async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    console.error(`FAIL ${name}: ${e.message}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

// The call must fail with HTTP `status` and, when given, errors[0] === `first`.
async function expectReject(promise, status, first) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected HTTP ${status}, but the call succeeded`);
  assert.ok(err.response, `expected an HTTP answer, got: ${err.message}`);
  assert.strictEqual(err.response.statusCode, status, `status (body ${JSON.stringify(err.response.body)})`);
  if (first !== undefined) {
    assert.strictEqual(err.response.body.errors[0], first);
    assert.strictEqual(err.message, first, 'node-vault reports errors[0] as the message');
  }
  return err;
}

const CAS = 'check-and-set parameter did not match the current version';

async function full() {
  const p = `${prefix}/web/session`;
  const first = { key: crypto.randomBytes(16).toString('hex'), rotate: false, n: 1 };
  const second = { ...first, key: crypto.randomBytes(16).toString('hex'), n: 2 };

  await step('health', async () => {
    const h = await vault.health();
    assert.strictEqual(h.initialized, true);
    assert.strictEqual(h.sealed, false);
  });
  await step('write', async () => {
    const r = await vault.write(`secret/data/${p}`, { data: first });
    assert.strictEqual(r.data.version, 1);
    assert.strictEqual(r.data.destroyed, false);
    const r2 = await vault.write(`secret/data/${p}`, { data: second, options: { cas: 1 } });
    assert.strictEqual(r2.data.version, 2);
  });
  await step('cas_conflict', async () => {
    await expectReject(vault.write(`secret/data/${p}`, { data: first, options: { cas: 1 } }), 400, CAS);
  });
  await step('read', async () => {
    const r = await vault.read(`secret/data/${p}`);
    assert.deepStrictEqual(r.data.data, second);
    assert.strictEqual(r.data.metadata.version, 2);
    const v1 = await vault.read(`secret/data/${p}?version=1`);
    assert.deepStrictEqual(v1.data.data, first);
    await expectReject(vault.read(`secret/data/${prefix}/missing`), 404);
  });
  await step('list', async () => {
    await vault.write(`secret/data/${prefix}/db`, { data: { password: crypto.randomBytes(8).toString('hex') } });
    const r = await vault.list(`secret/metadata/${prefix}`);
    assert.deepStrictEqual(r.data.keys, ['db', 'web/']);
    // The same with GET ?list=1 (node-vault's noCustomHTTPVerbs).
    const plain = await makeClient({ noCustomHTTPVerbs: true }).list(`secret/metadata/${prefix}/web`);
    assert.deepStrictEqual(plain.data.keys, ['session']);
  });
  await step('delete', async () => {
    await vault.delete(`secret/data/${p}`);
    const err = await expectReject(vault.read(`secret/data/${p}`), 404);
    assert.strictEqual(err.response.body.data.metadata.version, 2, 'a deleted version answers with its metadata');
    assert.notStrictEqual(err.response.body.data.metadata.deletion_time, '');
    const v1 = await vault.read(`secret/data/${p}?version=1`);
    assert.deepStrictEqual(v1.data.data, first);
    await vault.delete(`secret/metadata/${p}`);
    await expectReject(vault.read(`secret/metadata/${p}`), 404);
    const r = await vault.list(`secret/metadata/${prefix}`);
    assert.deepStrictEqual(r.data.keys, ['db']);
  });
}

async function forbidden() {
  await step('allowed_path', async () => {
    const r = await vault.write('secret/data/team/node', { data: { v: crypto.randomBytes(8).toString('hex') } });
    assert.ok(r.data.version >= 1);
    assert.ok((await vault.read('secret/data/team/node')).data.data.v);
  });
  await step('forbidden_path', async () => {
    await expectReject(vault.read('secret/data/private/db'), 403, 'permission denied');
    await expectReject(vault.write('secret/data/private/db', { data: { x: 'y' } }), 403, 'permission denied');
    await expectReject(vault.delete('secret/data/private/db'), 403, 'permission denied');
    assert.deepStrictEqual((await vault.list('secret/metadata/')).data.keys, ['team/']);
  });
}

(mode === 'full' ? full() : forbidden()).catch((e) => {
  console.error(`FAIL unexpected: ${e.message}`);
  process.exit(1);
});
