// Client-interop tests for Warren using amqplib (Node.js), core subset.
//
// The broker under test listens on 127.0.0.1:$WARREN_AMQP_PORT (guest/guest,
// vhost "/"). Expectations are AMQP 0-9-1 behaviour as documented by RabbitMQ,
// so the suite also passes against a stock RabbitMQ.
//
// Run:  WARREN_AMQP_PORT=5672 node --test interop/node/test_amqplib.mjs
// (Node 20's `node --test <dir>` only picks up *.test.mjs / test-*.mjs names,
// so pass the file explicitly, as interop/run.sh does.)
//
// Every test uses unique queue/exchange names and removes them afterwards.
// Waiting is event driven and bounded by a deadline; the only timed waits are
// the short "nothing more arrives" windows of the prefetch test.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import amqp from 'amqplib';

const PORT = process.env.WARREN_AMQP_PORT;
const HOST = process.env.WARREN_AMQP_HOST ?? '127.0.0.1';
const TIMEOUT_MS = Number(process.env.WARREN_INTEROP_TIMEOUT ?? '15') * 1000;
const TEST_OPTS = {
  skip: PORT ? false : 'WARREN_AMQP_PORT is not set (run via interop/run.sh)',
  timeout: Number(process.env.WARREN_INTEROP_TEST_TIMEOUT ?? '90') * 1000,
};

const REQUIRED_CAPABILITIES = [
  'publisher_confirms',
  'exchange_exchange_bindings',
  'basic.nack',
  'consumer_cancel_notify',
  'connection.blocked',
  'authentication_failure_close',
  'per_consumer_qos',
  'direct_reply_to',
];
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

// ------------------------------------------------------------------ helpers

async function rawConnect() {
  const conn = await amqp.connect(
    {
      protocol: 'amqp',
      hostname: HOST,
      port: Number(PORT),
      username: 'guest',
      password: 'guest',
      vhost: '/',
    },
    { timeout: TIMEOUT_MS, clientProperties: { connection_name: 'warren-interop-amqplib' } },
  );
  conn.errors = [];
  // An 'error' event without a listener would crash the test process.
  conn.on('error', (err) => conn.errors.push(err));
  return conn;
}

function watchChannel(ch) {
  ch.errors = [];
  ch.closed = false;
  ch.on('error', (err) => ch.errors.push(err));
  ch.on('close', () => {
    ch.closed = true;
  });
  return ch;
}

/** Per-test resources: unique names, tracked connections, cleanup. */
class Resources {
  constructor(testName) {
    const slug = testName
      .replace(/[^A-Za-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 40);
    this.prefix = `interop.node.${slug}.${randomUUID().slice(0, 8)}`;
    this.queues = [];
    this.exchanges = [];
    this.connections = [];
  }

  name(suffix) {
    return `${this.prefix}.${suffix}`;
  }

  queue(suffix = 'q') {
    const n = this.name(suffix);
    this.queues.push(n);
    return n;
  }

  exchange(suffix = 'x') {
    const n = this.name(suffix);
    this.exchanges.push(n);
    return n;
  }

  async connect() {
    const conn = await rawConnect();
    this.connections.push(conn);
    return conn;
  }

  async channel(conn, { confirm = false } = {}) {
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    return watchChannel(ch);
  }

  abort() {
    for (const conn of this.connections) conn.connection.stream?.destroy(new Error('aborted by the test watchdog'));
  }

  async cleanup() {
    for (const conn of this.connections) {
      try {
        await conn.close();
      } catch {
        // already closed
      }
    }
    if (this.queues.length === 0 && this.exchanges.length === 0) return;
    let conn;
    try {
      conn = await rawConnect();
    } catch {
      return; // broker gone: the test already failed
    }
    try {
      let ch = watchChannel(await conn.createChannel());
      const steps = [
        ...this.queues.map((q) => (c) => c.deleteQueue(q)),
        ...this.exchanges.map((x) => (c) => c.deleteExchange(x)),
      ];
      for (const step of steps) {
        try {
          await step(ch);
        } catch {
          ch = watchChannel(await conn.createChannel());
        }
      }
    } finally {
      try {
        await conn.close();
      } catch {
        // ignore
      }
    }
  }
}

/**
 * Runs `body(res)` with a fresh Resources, always cleaning up. A test that
 * outlives its budget (a broker that stops answering) fails, and its sockets
 * are destroyed so that no open handle keeps the test process alive.
 */
function brokerTest(name, body) {
  test(name, { ...TEST_OPTS, timeout: TEST_OPTS.timeout + 10_000 }, async () => {
    const res = new Resources(name);
    let timer;
    const watchdog = new Promise((_, reject) => {
      timer = setTimeout(() => {
        res.timedOut = true;
        reject(new Error(`${name}: exceeded ${TEST_OPTS.timeout}ms (broker not answering?)`));
      }, TEST_OPTS.timeout);
    });
    try {
      await Promise.race([body(res), watchdog]);
    } finally {
      clearTimeout(timer);
      if (res.timedOut) res.abort();
      else await res.cleanup();
    }
  });
}

/** Collects deliveries; `waitFor(n)` resolves once n have arrived (bounded). */
class Inbox {
  constructor() {
    this.items = [];
    this.wake = null;
  }

  push = (msg) => {
    this.items.push(msg);
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
  };

  async waitFor(n, what, timeoutMs = TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length < n) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`timed out after ${timeoutMs}ms waiting for ${what} (${this.items.length}/${n})`);
      }
      let timer;
      await new Promise((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, remaining);
      });
      clearTimeout(timer);
      this.wake = null;
    }
    return this.items;
  }
}

/** A bounded window in which nothing more is expected to arrive. */
const quietPeriod = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** basic.get (no-ack) until empty; returns bodies as strings. */
async function drain(ch, queue) {
  const bodies = [];
  for (let i = 0; i < 10_000; i++) {
    const msg = await ch.get(queue, { noAck: true });
    if (msg === false) return bodies;
    bodies.push(msg.content.toString());
  }
  throw new Error(`queue ${queue} did not drain`);
}

// ------------------------------------------------------------------ tests

brokerTest('connect, server capabilities, close', async () => {
  const conn = await rawConnect();
  let closed = false;
  conn.on('close', () => {
    closed = true;
  });
  try {
    const props = conn.connection.serverProperties;
    assert.ok(props && typeof props.capabilities === 'object', 'server_properties has a capabilities table');
    const missing = REQUIRED_CAPABILITIES.filter((c) => props.capabilities[c] !== true);
    assert.deepEqual(missing, [], `capabilities not advertised as true: ${missing}`);
    const ch = watchChannel(await conn.createChannel());
    await ch.close();
    assert.equal(ch.closed, true);
  } finally {
    await conn.close();
  }
  assert.equal(closed, true);
  assert.deepEqual(conn.errors, []);
});

brokerTest('server-named queue', async (res) => {
  const conn = await res.connect();
  const ch = await res.channel(conn);
  const ok = await ch.assertQueue('', { exclusive: true });
  assert.match(ok.queue, /^amq\.gen-/);
  assert.equal(ok.messageCount, 0);
  assert.equal(ok.consumerCount, 0);
  // it is usable like any other queue
  ch.sendToQueue(ok.queue, Buffer.from('to-server-named'));
  assert.deepEqual(await drain(ch, ok.queue), ['to-server-named']);
});

brokerTest('declare, publish, consume with ack', async (res) => {
  const q = res.queue();
  const conn = await res.connect();
  const ch = await res.channel(conn);
  const declared = await ch.assertQueue(q, { durable: false });
  assert.equal(declared.queue, q);
  assert.equal(declared.messageCount, 0);

  const inbox = new Inbox();
  const { consumerTag } = await ch.consume(q, inbox.push, { noAck: false });
  assert.ok(consumerTag);

  const sent = ch.sendToQueue(q, Buffer.from('hello'), {
    contentType: 'text/plain',
    correlationId: 'c-1',
    messageId: 'm-1',
    headers: { 'x-custom': 'v', n: 7 },
  });
  assert.equal(sent, true);

  const [msg] = await inbox.waitFor(1, 'the delivery');
  assert.equal(msg.content.toString(), 'hello');
  assert.equal(msg.fields.redelivered, false);
  assert.equal(msg.fields.exchange, '');
  assert.equal(msg.fields.routingKey, q);
  assert.equal(msg.fields.consumerTag, consumerTag);
  assert.equal(msg.properties.contentType, 'text/plain');
  assert.equal(msg.properties.correlationId, 'c-1');
  assert.equal(msg.properties.messageId, 'm-1');
  assert.deepEqual(msg.properties.headers, { 'x-custom': 'v', n: 7 });
  ch.ack(msg);

  await ch.cancel(consumerTag);
  const after = await ch.checkQueue(q);
  assert.equal(after.messageCount, 0);
  assert.equal(after.consumerCount, 0);
  assert.deepEqual(ch.errors, []);
});

brokerTest('topic exchange fans out to two queues', async (res) => {
  const ex = res.exchange();
  const [q1, q2, q3] = [res.queue('one'), res.queue('two'), res.queue('other')];
  const conn = await res.connect();
  const ch = await res.channel(conn, { confirm: true });
  await ch.assertExchange(ex, 'topic', { durable: false });
  for (const [q, pattern] of [
    [q1, 'logs.*'],
    [q2, 'logs.#'],
    [q3, 'audit.#'],
  ]) {
    await ch.assertQueue(q);
    await ch.bindQueue(q, ex, pattern);
  }

  ch.publish(ex, 'logs.error', Buffer.from('logs.error'));
  ch.publish(ex, 'logs.a.b', Buffer.from('logs.a.b'));
  ch.publish(ex, 'metrics.cpu', Buffer.from('metrics.cpu'));
  await ch.waitForConfirms();

  assert.deepEqual(await drain(ch, q1), ['logs.error']);
  assert.deepEqual(await drain(ch, q2), ['logs.error', 'logs.a.b']);
  assert.deepEqual(await drain(ch, q3), []);
});

brokerTest('confirm channel: waitForConfirms and mandatory returns', async (res) => {
  const q = res.queue();
  const conn = await res.connect();
  const ch = await res.channel(conn, { confirm: true });
  await ch.assertQueue(q);

  const outcomes = [];
  for (let i = 0; i < 100; i++) {
    ch.sendToQueue(q, Buffer.from(`c${i}`), { mandatory: true }, (err) => outcomes.push(err));
  }
  await ch.waitForConfirms();
  assert.equal(outcomes.length, 100);
  assert.ok(
    outcomes.every((err) => err === null || err === undefined),
    'every publish acked',
  );
  assert.equal((await ch.checkQueue(q)).messageCount, 100);

  const returned = [];
  ch.on('return', (msg) => returned.push(msg));
  const nowhere = res.name('no-such-queue');
  ch.publish('', nowhere, Buffer.from('lost'), { mandatory: true });
  await ch.waitForConfirms(); // basic.return precedes the basic.ack
  assert.equal(returned.length, 1);
  assert.equal(returned[0].fields.replyCode, 312);
  assert.equal(returned[0].fields.routingKey, nowhere);
  assert.equal(returned[0].content.toString(), 'lost');
  assert.deepEqual(ch.errors, []);
});

brokerTest('nack with requeue redelivers with redelivered=true', async (res) => {
  const q = res.queue();
  const conn = await res.connect();
  const ch = await res.channel(conn);
  await ch.assertQueue(q);
  const inbox = new Inbox();
  await ch.consume(q, inbox.push, { noAck: false });

  ch.sendToQueue(q, Buffer.from('again'));
  const [first] = await inbox.waitFor(1, 'first delivery');
  assert.equal(first.fields.redelivered, false);
  ch.nack(first, false, true);

  const [, second] = await inbox.waitFor(2, 'redelivery');
  assert.equal(second.content.toString(), 'again');
  assert.equal(second.fields.redelivered, true);
  assert.notEqual(second.fields.deliveryTag, first.fields.deliveryTag);
  ch.ack(second);

  // the ack is settled before a later synchronous call on the same channel
  assert.equal((await ch.checkQueue(q)).messageCount, 0);
  assert.equal(inbox.items.length, 2);
});

brokerTest('prefetch limits unacknowledged deliveries', async (res) => {
  const q = res.queue();
  const pubConn = await res.connect();
  const pub = await res.channel(pubConn, { confirm: true });
  await pub.assertQueue(q);
  for (let i = 0; i < 5; i++) pub.sendToQueue(q, Buffer.from(`p${i}`));
  await pub.waitForConfirms();

  const conn = await res.connect();
  const ch = await res.channel(conn);
  await ch.prefetch(2);
  const inbox = new Inbox();
  await ch.consume(q, inbox.push, { noAck: false });

  await inbox.waitFor(2, 'first two deliveries');
  await quietPeriod(500);
  assert.equal(inbox.items.length, 2, 'prefetch=2 exceeded before any ack');
  assert.equal((await pub.checkQueue(q)).messageCount, 3);

  ch.ack(inbox.items[0]);
  await inbox.waitFor(3, 'third delivery after one ack');
  await quietPeriod(300);
  assert.equal(inbox.items.length, 3);

  ch.ack(inbox.items[2], true); // acks tags 2 and 3
  await inbox.waitFor(5, 'remaining deliveries');
  ch.ack(inbox.items[4], true);
  assert.deepEqual(
    inbox.items.map((m) => m.content.toString()),
    ['p0', 'p1', 'p2', 'p3', 'p4'],
  );
  assert.equal((await ch.checkQueue(q)).messageCount, 0);
});

brokerTest('passive declare of a missing queue is a 404 channel error', async (res) => {
  const conn = await res.connect();
  const ch = await res.channel(conn);
  await assert.rejects(ch.checkQueue(res.name('missing')), (err) => {
    assert.equal(err.code, 404);
    assert.match(err.message, /NOT_FOUND/);
    return true;
  });
  // the channel is closed by the broker, the connection survives
  assert.equal(ch.errors.length, 1);
  assert.equal(ch.errors[0].code, 404);
  const ch2 = await res.channel(conn);
  const ok = await ch2.assertQueue('', { exclusive: true });
  assert.match(ok.queue, /^amq\.gen-/);
  assert.deepEqual(conn.errors, []);
});

brokerTest('RPC over direct reply-to', async (res) => {
  const serverQ = res.queue('rpc');
  const serverConn = await res.connect();
  const server = await res.channel(serverConn);
  await server.assertQueue(serverQ);
  const requests = new Inbox();
  await server.consume(
    serverQ,
    (msg) => {
      requests.push(msg);
      server.sendToQueue(msg.properties.replyTo, Buffer.from(`pong:${msg.content}`), {
        correlationId: msg.properties.correlationId,
      });
      server.ack(msg);
    },
    { noAck: false },
  );

  const clientConn = await res.connect();
  const client = await res.channel(clientConn);
  const replies = new Inbox();
  await client.consume(DIRECT_REPLY_TO, replies.push, { noAck: true });
  const correlationId = randomUUID();
  client.sendToQueue(serverQ, Buffer.from('ping'), { replyTo: DIRECT_REPLY_TO, correlationId });

  const [req] = await requests.waitFor(1, 'the request');
  assert.equal(req.properties.correlationId, correlationId);
  assert.ok(
    req.properties.replyTo.startsWith(`${DIRECT_REPLY_TO}.`),
    `reply_to rewritten to a routable address, got ${req.properties.replyTo}`,
  );

  const [reply] = await replies.waitFor(1, 'the reply');
  assert.equal(reply.content.toString(), 'pong:ping');
  assert.equal(reply.properties.correlationId, correlationId);
  assert.deepEqual(client.errors, []);
  assert.deepEqual(server.errors, []);
});

brokerTest('large message round trip', async (res) => {
  const q = res.queue();
  const conn = await res.connect();
  const ch = await res.channel(conn, { confirm: true });
  await ch.assertQueue(q);
  const payload = randomBytes(1024 * 1024);
  ch.sendToQueue(q, payload);
  await ch.waitForConfirms();
  const msg = await ch.get(q, { noAck: true });
  assert.notEqual(msg, false);
  assert.equal(msg.content.length, payload.length);
  assert.ok(msg.content.equals(payload), '1 MiB body byte-exact');
});

// ------------------------------------------------ compatibility (issue 15)

test('callback API: closing with publishes still queued raises no error', TEST_OPTS, async () => {
  const { default: callbackApi } = await import('amqplib/callback_api');
  const url = `amqp://guest:guest@${HOST}:${PORT}/`;
  const errors = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the connection did not close in time')), TIMEOUT_MS);
    callbackApi.connect(url, (err, conn) => {
      if (err) return reject(err);
      conn.on('error', (e) => errors.push(e));
      conn.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      conn.createChannel((err2, ch) => {
        if (err2) return reject(err2);
        ch.on('error', (e) => errors.push(e));
        const body = Buffer.alloc(4096, 'x');
        // Far more than a socket takes at once: most of it is still queued when close goes out.
        for (let i = 0; i < 5000; i += 1) ch.publish('', 'interop.node.nowhere', body);
        conn.close((closeErr) => {
          if (closeErr) errors.push(closeErr);
        });
      });
    });
  });
  assert.deepEqual(errors.map(String), []);
});
