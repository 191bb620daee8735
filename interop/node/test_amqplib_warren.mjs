// Warren's own features through amqplib, unchanged: content filters on bindings (`x-filter`)
// and contracts (made over the management API; a violation is nacked, or dead-lettered with its
// reason). RabbitMQ has neither, so unlike test_amqplib.mjs this file does not pass against a
// stock RabbitMQ. Run: WARREN_AMQP_PORT=5672 WARREN_HTTP_PORT=15672 node --test interop/node/test_amqplib_warren.mjs

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import amqp from 'amqplib';

const PORT = process.env.WARREN_AMQP_PORT;
const HTTP_PORT = process.env.WARREN_HTTP_PORT;
const AUTH = 'Basic ' + Buffer.from('guest:guest').toString('base64');
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

/** Creates (or with `method` DELETE, removes) contract `name` over the management API. */
async function contract(name, spec, method = 'PUT') {
  const res = await fetch(`http://127.0.0.1:${HTTP_PORT}/api/contracts/%2F/${name}`, {
    method,
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: spec ? JSON.stringify(spec) : undefined,
  });
  return res.status;
}

/** Publishes on a confirm channel; resolves to 'ack' or 'nack'. */
function publishConfirmed(ch, exchange, body, options) {
  return new Promise((resolve) => {
    ch.publish(exchange, '', Buffer.from(body), options, (err) => resolve(err ? 'nack' : 'ack'));
  });
}

const CONTRACT_OPTS = { ...TEST_OPTS, skip: TEST_OPTS.skip || (HTTP_PORT ? false : 'WARREN_HTTP_PORT is not set') };
const SCHEMA = { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } };

test('a message breaking its contract is nacked, and returned with the violation when mandatory', CONTRACT_OPTS, async () => {
  const id = randomUUID().slice(0, 8);
  const exchange = `contracted-${id}`;
  assert.equal(await contract(`order-${id}`, { exchange, content_type: 'application/json', schema: SCHEMA }), 201);
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${PORT}`);
  try {
    const ch = await conn.createConfirmChannel();
    const returned = new Promise((resolve) => ch.on('return', resolve));
    await ch.assertExchange(exchange, 'fanout', { autoDelete: true, durable: false });
    const q = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(q, exchange, '');
    const json = { contentType: 'application/json' };
    assert.equal(await publishConfirmed(ch, exchange, '{"id": 1}', json), 'ack');
    assert.equal(await publishConfirmed(ch, exchange, '{"id": "one"}', json), 'nack');
    assert.equal(await publishConfirmed(ch, exchange, '{}', { ...json, mandatory: true }), 'nack');
    const back = await returned;
    assert.equal(back.fields.replyCode, 312);
    assert.match(back.fields.replyText, /^CONTRACT_VIOLATION - contract 'order-[0-9a-f]+' v1: \/: "id" is a required property/);
    assert.deepEqual(await drain(ch, q), ['{"id": 1}']);
  } finally {
    await conn.close();
    await contract(`order-${id}`, null, 'DELETE');
  }
});

test('a contract that dead-letters sends the message to its dead-letter queue with the reason', CONTRACT_OPTS, async () => {
  const id = randomUUID().slice(0, 8);
  const [exchange, dlx] = [`contracted-${id}`, `invalid-${id}`];
  const spec = { exchange, on_violation: 'dead-letter', dead_letter_exchange: dlx, schema: SCHEMA };
  assert.equal(await contract(`order-${id}`, spec), 201);
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${PORT}`);
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertExchange(exchange, 'fanout', { autoDelete: true, durable: false });
    await ch.assertExchange(dlx, 'fanout', { autoDelete: true, durable: false });
    const dlq = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(dlq, dlx, '');
    assert.equal(await publishConfirmed(ch, exchange, '{"id": 1.5}', {}), 'ack');
    const dead = await ch.get(dlq, { noAck: true });
    assert.ok(dead, 'the dead letter arrived');
    const headers = dead.properties.headers;
    assert.equal(headers['x-first-death-reason'], 'contract');
    assert.equal(headers['x-contract'], `order-${id}/1`);
    assert.equal(headers['x-contract-violations'][0].pointer, '/id');
    assert.equal(headers['x-death'][0].reason, 'contract');
    assert.equal(headers['x-death'][0].exchange, exchange);
  } finally {
    await conn.close();
    await contract(`order-${id}`, null, 'DELETE');
  }
});
