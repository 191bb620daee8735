// Warren's own features through amqplib, unchanged: content filters on bindings (`x-filter`).
// RabbitMQ ignores the argument, so unlike test_amqplib.mjs this file does not pass against a
// stock RabbitMQ. Run: WARREN_AMQP_PORT=5672 node --test interop/node/test_amqplib_warren.mjs

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import amqp from 'amqplib';

const PORT = process.env.WARREN_AMQP_PORT;
const TEST_OPTS = {
  skip: PORT ? false : 'WARREN_AMQP_PORT is not set (run via interop/run.sh)',
  timeout: 60_000,
};

async function drain(ch, queue) {
  const bodies = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (!m) return bodies;
    bodies.push(m.content.toString());
  }
}

test('a filtered binding takes only what its expression admits', TEST_OPTS, async () => {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${PORT}`);
  try {
    const ch = await conn.createConfirmChannel();
    const id = randomUUID().slice(0, 8);
    const exchange = `orders-${id}`;
    await ch.assertExchange(exchange, 'direct', { autoDelete: true, durable: false });
    const big = (await ch.assertQueue('', { exclusive: true })).queue;
    const all = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(big, exchange, 'orders', { 'x-filter': "body.total >= 100 AND content_type = 'application/json'" });
    await ch.bindQueue(all, exchange, 'orders');
    for (const total of [150, 50]) {
      ch.publish(exchange, 'orders', Buffer.from(JSON.stringify({ total })), { contentType: 'application/json' });
    }
    ch.publish(exchange, 'orders', Buffer.from('{"total": 500}'), { contentType: 'text/plain' });
    await ch.waitForConfirms();
    assert.deepEqual(await drain(ch, big), ['{"total":150}']);
    assert.equal((await drain(ch, all)).length, 3);
  } finally {
    await conn.close();
  }
});

test('a bad filter closes the channel with 406', TEST_OPTS, async () => {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${PORT}`);
  try {
    const ch = await conn.createChannel();
    const closed = new Promise((resolve) => ch.on('error', resolve));
    const q = (await ch.assertQueue('', { exclusive: true })).queue;
    await assert.rejects(ch.bindQueue(q, 'amq.direct', 'k', { 'x-filter': 'total >' }));
    const err = await closed;
    assert.equal(err.code, 406);
    assert.match(err.message, /byte 7/);
  } finally {
    await conn.close().catch(() => {});
  }
});
