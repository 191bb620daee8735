// Resource alarms through amqplib, unchanged: with the memory high watermark lowered at run
// time (PUT /api/alarms) a publishing connection emits 'blocked' with RabbitMQ's reason, and
// 'unblocked' once it is raised again. A broker of its own (WARREN_BIN, which
// interop/run.sh sets). Run: WARREN_BIN=target/release/warren node --test interop/node/test_amqplib_alarms.mjs

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import amqp from 'amqplib';
import { startBroker } from './warren_process.mjs';

const BIN = process.env.WARREN_BIN;
const TEST_OPTS = { skip: BIN ? false : 'WARREN_BIN is not set (run via interop/run.sh)', timeout: 60_000 };
const AUTH = 'Basic ' + Buffer.from('guest:guest').toString('base64');

let dir;
let broker;
let ports;

before(async () => {
  if (!BIN) return;
  dir = mkdtempSync(join(tmpdir(), 'warren-amqplib-alarms-'));
  const started = await startBroker(dir);
  broker = started.process;
  ports = started.ports;
});

after(() => {
  if (broker) broker.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function setMemoryLimit(bytes) {
  const res = await fetch(`http://127.0.0.1:${ports.http}/api/alarms`, {
    method: 'PUT',
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ memory_high_watermark_bytes: bytes }),
  });
  assert.equal(res.status, 200);
  return res.json();
}

test('a publisher is told blocked and unblocked', TEST_OPTS, async () => {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${ports.amqp}`);
  try {
    const ch = await conn.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(queue, Buffer.from('before'));
    await ch.waitForConfirms();
    const blocked = once(conn, 'blocked');
    assert.deepEqual((await setMemoryLimit(1)).raised, ['memory']);
    const [reason] = await blocked;
    assert.equal(reason, 'low on memory');
    const unblocked = once(conn, 'unblocked');
    assert.deepEqual((await setMemoryLimit(1e15)).raised, []);
    await unblocked;
    ch.sendToQueue(queue, Buffer.from('after'));
    await ch.waitForConfirms();
    assert.equal((await ch.checkQueue(queue)).messageCount, 2);
  } finally {
    await conn.close();
  }
});
