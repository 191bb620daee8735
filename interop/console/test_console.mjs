// Browser tests of the web console: Playwright (playwright-core) drives Debian's chromium,
// headless, against a live Warren started here, while amqplib makes the traffic the pages must
// show. Every page is saved as a screenshot under target/console-screenshots/. The browser may
// only talk to the broker: any request elsewhere, any script error and any Content-Security-
// Policy violation fails the run.
//
//   WARREN_BIN=target/release/warren node --test interop/console/test_console.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { chromium } from 'playwright-core';
import { startBroker } from '../node/warren_process.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SHOTS = resolve(process.env.CONSOLE_SCREENSHOTS || join(dirname(fileURLToPath(import.meta.url)), '../../target/console-screenshots'));
const WAIT_MS = 15_000;
const ADMIN = { name: 'admin', password: 'admin-pw' };
const VIEWER = { name: 'viewer', password: 'viewer-pw' };
const BULK_QUEUES = 10_000;

let dir, broker, base, browser, context, page, amqpConn, channel;
const problems = [];

// The broker's management API, as an administrator (to arrange and to check what pages did).
async function mgmt(method, path, body) {
  const auth = Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64');
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function go(fragment) {
  await page.evaluate((f) => {
    location.hash = f;
  }, fragment);
}

async function logIn(user) {
  await page.goto(`${base}/`);
  await page.getByLabel('Username').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'warren-console-'));
  const config = join(dir, 'warren.toml');
  writeFileSync(
    config,
    [
      'statistics_interval_ms = 500',
      '[[users]]',
      `name = "${ADMIN.name}"`,
      `password = "${ADMIN.password}"`,
      'tags = ["administrator"]',
      '[[users]]',
      `name = "${VIEWER.name}"`,
      `password = "${VIEWER.password}"`,
      'tags = ["monitoring"]',
      '',
    ].join('\n'),
  );
  broker = await startBroker(dir, config, { tls: false });
  base = `http://127.0.0.1:${broker.ports.http}`;
  amqpConn = await amqp.connect(`amqp://${ADMIN.name}:${ADMIN.password}@127.0.0.1:${broker.ports.amqp}`);
  channel = await amqpConn.createConfirmChannel();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith('blob:') && !url.startsWith('data:')) problems.push(`request outside the broker: ${url}`);
  });
});

after(async () => {
  await browser?.close();
  await amqpConn?.close().catch(() => {});
  broker?.process.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(problems, [], 'the console made no outside requests, had no script errors and broke no CSP rule');
});

test('a wrong password is refused in plain words; logging in again works from the keyboard', async () => {
  await page.goto(`${base}/`);
  await page.getByLabel('Username').fill(ADMIN.name);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Login failed: wrong username or password.').waitFor();
  await shot('login-refused');
  // The name stays and the cursor waits in the password field; Enter submits.
  assert.equal(await page.getByLabel('Username').inputValue(), ADMIN.name);
  const focused = () => page.evaluate(() => document.activeElement.name);
  assert.equal(await focused(), 'password');
  await page.keyboard.press('Shift+Tab');
  assert.equal(await focused(), 'username');
  await page.keyboard.press('Tab');
  await page.keyboard.type(ADMIN.password);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === `warren_session_${broker.ports.http}`);
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session cookie');
  await page.getByText('Message rates').waitFor();
});

test('a request with the session cookie but without its anti-forgery token is refused', async () => {
  const status = await page.evaluate(async () => {
    const r = await fetch('/api/queues/%2F/forged', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' });
    return r.status;
  });
  assert.equal(status, 401);
  await assert.rejects(mgmt('GET', '/api/queues/%2F/forged'), /404/);
});

test('the overview chart rises with live traffic', async () => {
  await go('#/');
  const published = page.locator('[data-chart="Message rates"] [data-series="publish"]');
  await published.waitFor();
  await channel.assertQueue('console-traffic', { durable: false });
  let sending = true;
  const load = (async () => {
    while (sending) {
      for (let i = 0; i < 200; i += 1) channel.sendToQueue('console-traffic', Buffer.from(`m${i}`));
      await channel.waitForConfirms();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await until('the publish rate on the overview chart', async () => Number(await published.getAttribute('data-value')) > 50);
  } finally {
    sending = false;
    await load;
  }
  await until('the queued count on the overview', async () => Number(await page.locator('[data-chart="Queued messages"] [data-series="ready"]').getAttribute('data-value')) > 0);
  await shot('overview');
});

test('a queue declared over AMQP appears in the list; publish to it and peek', async () => {
  await channel.assertQueue('console-orders', { durable: true });
  await go('#/queues');
  await page.getByPlaceholder('Filter queues by name').fill('console-orders');
  const link = page.getByRole('link', { name: 'console-orders', exact: true });
  await link.waitFor();
  await shot('queues');
  await link.click();
  await page.getByRole('heading', { name: 'Queue console-orders' }).waitFor();
  await page.getByLabel('Body').fill('{"order": 42, "item": "lamp"}');
  await page.getByLabel('Message id').fill('console-peek-1');
  await page.getByRole('button', { name: 'Publish' }).click();
  await page.getByText('Published: the message was routed.').waitFor();
  await page.getByRole('button', { name: 'Show messages' }).click();
  await page.getByText('1 of 1 ready messages').waitFor();
  await page.locator('details.message summary').first().click();
  await page.getByText('"item": "lamp"').waitFor();
  await page.locator('dd', { hasText: 'console-peek-1' }).waitFor();
  const q = await mgmt('GET', '/api/queues/%2F/console-orders');
  assert.equal(q.messages_ready, 1, 'peeking took nothing');
  await shot('queue');
});

test('purging asks first, and a cancelled confirmation changes nothing', async () => {
  await page.getByRole('button', { name: 'Purge' }).click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  assert.equal((await mgmt('GET', '/api/queues/%2F/console-orders')).messages_ready, 1);
  await page.getByRole('button', { name: 'Purge' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Purge' }).click();
  await page.getByText("Purged 'console-orders'.").waitFor();
  await until('the purge', async () => (await mgmt('GET', '/api/queues/%2F/console-orders')).messages_ready === 0);
});

test('dead letters: grouped by reason and source, replay one, then the rest', async () => {
  await channel.assertExchange('console-dlx', 'fanout', { durable: true });
  await channel.assertQueue('console-dlq', { durable: true });
  await channel.bindQueue('console-dlq', 'console-dlx', '');
  await channel.assertQueue('console-work', { durable: true, arguments: { 'x-dead-letter-exchange': 'console-dlx' } });
  for (let i = 1; i <= 3; i += 1) channel.sendToQueue('console-work', Buffer.from(JSON.stringify({ job: i })), { persistent: true, messageId: `job-${i}` });
  await channel.waitForConfirms();
  const consumer = await amqpConn.createChannel();
  let rejected = 0;
  await consumer.consume('console-work', (m) => {
    consumer.nack(m, false, false);
    rejected += 1;
  });
  await until('three rejected messages in the dead-letter queue', async () => rejected === 3 && (await mgmt('GET', '/api/queues/%2F/console-dlq')).messages_ready === 3);
  await consumer.close();

  await go('#/dead-letters');
  const dlq = page.getByRole('link', { name: 'console-dlq', exact: true });
  await dlq.waitFor();
  await page.getByText('queue console-work').waitFor();
  await shot('dead-letter-queues');
  await dlq.click();
  await page.getByRole('heading', { name: 'rejected · queue console-work · 3' }).waitFor();
  await page.getByLabel('Select message #0').check();
  await page.getByRole('button', { name: 'Replay selected (1)' }).click();
  await page.getByText('Replay 1 selected message(s) to the queue each died in?').waitFor();
  await shot('dead-letters-confirm');
  await page.getByRole('dialog').getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replayed 1 message(s).').waitFor();
  const work = await mgmt('GET', '/api/queues/%2F/console-work/messages');
  assert.deepEqual(work.messages.map((m) => m.properties.message_id), ['job-1'], 'the selected message went back to its source');
  await page.getByRole('heading', { name: 'rejected · queue console-work · 2' }).waitFor();
  await page.locator('details.message summary').first().click();
  await page.getByText('Dead-letter history (x-death)').first().waitFor();
  await page.getByText("rejected in queue 'console-work'", { exact: false }).first().waitFor();
  await shot('dead-letters');
  await page.getByRole('button', { name: 'Replay all' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Replay' }).click();
  await page.getByText('Replayed 2 message(s).').waitFor();
  assert.equal((await mgmt('GET', '/api/queues/%2F/console-work')).messages_ready, 3);
  assert.equal((await mgmt('GET', '/api/queues/%2F/console-dlq')).messages_ready, 0);
});

test('an exchange made from its list: bind a queue on its page and publish through it', async () => {
  await go('#/exchanges');
  await page.locator('summary', { hasText: 'Add an exchange' }).click();
  await page.getByLabel('Name', { exact: true }).fill('console-events');
  await page.getByLabel('Type').selectOption('topic');
  await page.getByRole('button', { name: 'Add an exchange' }).click();
  await page.getByText('Done.').waitFor();
  await page.getByPlaceholder('Filter exchanges by name').fill('console-events');
  await page.getByRole('link', { name: 'console-events' }).click();
  await page.getByRole('heading', { name: 'Exchange console-events' }).waitFor();
  await page.getByText('No bindings from this exchange.').waitFor();
  const bind = page.locator('form.inline-form');
  await bind.getByLabel('Queue').fill('console-orders');
  await bind.getByLabel('Routing key').fill('orders.#');
  await bind.getByRole('button', { name: 'Bind' }).click();
  await page.getByText("Bound queue 'console-orders'.").waitFor();
  await page.getByRole('cell', { name: 'orders.#', exact: true }).waitFor();
  const publish = page.locator('form.publish');
  await publish.getByLabel('Routing key').fill('orders.new');
  await publish.getByRole('button', { name: 'Publish' }).click();
  await page.getByText('Published: the message was routed.').waitFor();
  assert.equal((await mgmt('GET', '/api/queues/%2F/console-orders')).messages_ready, 1);
  await publish.getByLabel('Routing key').fill('invoices.new');
  await publish.getByRole('button', { name: 'Publish' }).click();
  await page.getByText('Published, but no queue took it', { exact: false }).waitFor();
  await shot('exchange');
});

test('a dead letter with a malformed x-death history is still shown', async () => {
  await channel.assertQueue('console-odd', { durable: true });
  const headers = { 'x-death': [{ reason: 'rejected', time: 'not a time' }, 5, 'text'] };
  channel.sendToQueue('console-odd', Buffer.from('odd'), { headers });
  await channel.waitForConfirms();
  await go('#/dead-letters/%2F/console-odd');
  await page.getByRole('heading', { name: 'rejected · unknown · 1' }).waitFor();
  await page.locator('details.message summary').first().click();
  await page.getByText("rejected in queue '?'", { exact: false }).waitFor();
});

test('logging in again in another tab does not strand this one', async () => {
  const other = await context.newPage();
  other.setDefaultTimeout(WAIT_MS);
  await other.goto(`${base}/`);
  // The shared cookie names a live session, so the new tab is logged in already.
  await other.getByRole('button', { name: 'Log out' }).waitFor();
  // A fresh login there (as after a logout) gives the browser a new session and token.
  const status = await other.evaluate(async (user) => {
    const r = await fetch('/api/session', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': 'none' }, body: JSON.stringify(user) });
    return r.status;
  }, { username: ADMIN.name, password: ADMIN.password });
  assert.equal(status, 200);
  await other.close();
  // This tab's token is now stale: its next action takes the new one and goes through.
  await go('#/queue/%2F/console-odd');
  await page.getByRole('button', { name: 'Purge' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Purge' }).click();
  await page.getByText("Purged 'console-odd'.").waitFor();
  assert.equal((await mgmt('GET', '/api/queues/%2F/console-odd')).messages_ready, 0);
});

test("message tracking: a tracked message's timeline by its message_id", async () => {
  await channel.assertQueue('console-tracked', { durable: true });
  channel.sendToQueue('console-tracked', Buffer.from('{"tracked": true}'), { messageId: 'order-7', persistent: true, headers: { 'x-warren-track': true } });
  await channel.waitForConfirms();
  const consumer = await amqpConn.createChannel();
  await consumer.consume('console-tracked', (m) => consumer.ack(m));
  await until('the tracked message acked', async () => (await mgmt('GET', '/api/queues/%2F/console-tracked')).messages === 0);
  await go('#/tracking');
  await page.getByLabel('Tracking id or message_id').fill('order-7');
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.locator('[data-outcome="succeeded"]').waitFor();
  const events = await page.locator('.events [data-event]').evaluateAll((els) => els.map((e) => e.dataset.event));
  assert.deepEqual(events.slice(0, 4), ['accepted', 'routed', 'delivered', 'acked']);
  await page.getByText("Routed by exchange '(default)' to 'console-tracked'").waitFor();
  await shot('tracking');
  await consumer.close();
  await page.getByLabel('Tracking id or message_id').fill('no-such-message');
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByText("No tracked message with the id 'no-such-message' in vhost '/'.", { exact: false }).waitFor();
});

test('contracts and transforms: view one and test a sample message', async () => {
  await mgmt('PUT', '/api/contracts/%2F/console-order', {
    exchange: 'amq.direct',
    routing_key: 'orders',
    schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
  });
  await mgmt('PUT', '/api/transforms/%2F/console-shape', { program: '{body: {id: .body.order, source: "shop"}}' });
  await go('#/contracts');
  await page.getByRole('link', { name: 'console-order' }).click();
  await page.getByText('Version 1 (checked now)').waitFor();
  await page.getByLabel('Sample body (JSON)').fill('{"id": "seven"}');
  await page.getByLabel('Routing key').fill('orders');
  await page.getByRole('button', { name: 'Check the sample' }).click();
  await page.locator('[data-valid="false"]').waitFor();
  await page.getByText('/id:', { exact: false }).waitFor();
  await shot('contract');
  await page.getByLabel('Sample body (JSON)').fill('{"id": 7}');
  await page.getByRole('button', { name: 'Check the sample' }).click();
  await page.getByText('Valid against version 1.').waitFor();
  await page.getByLabel('Sample body (JSON)').fill('{"id": ');
  await page.getByRole('button', { name: 'Check the sample' }).click();
  await page.getByText('The sample body is not valid JSON', { exact: false }).waitFor();

  await go('#/transforms');
  await page.getByRole('link', { name: 'console-shape' }).click();
  await page.getByText('{body: {id: .body.order, source: "shop"}}').waitFor();
  await page.getByLabel('Sample body (JSON)').fill('{"order": 7}');
  await page.getByRole('button', { name: 'Run on the sample' }).click();
  await page.getByText('made 1 message(s)', { exact: false }).waitFor();
  await page.getByText('"source": "shop"', { exact: false }).first().waitFor();
  await shot('transform');
});

test('definitions: export downloads a file, import adds what it defines', async () => {
  await go('#/definitions');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download definitions' }).click()]);
  const file = join(dir, 'exported.json');
  await download.saveAs(file);
  const exported = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8'));
  assert.ok(exported.queues.some((q) => q.name === 'console-orders'), 'the export holds the queues');
  const toImport = join(dir, 'import.json');
  writeFileSync(toImport, JSON.stringify({ queues: [{ name: 'console-imported', vhost: '/', durable: true, auto_delete: false, arguments: {} }] }));
  await page.getByLabel('Definitions file').setInputFiles(toImport);
  await page.getByRole('button', { name: 'Import the file' }).click();
  await page.getByText('Imported import.json.').waitFor();
  await mgmt('GET', '/api/queues/%2F/console-imported');
  await shot('definitions');
});

test('every list page renders', async () => {
  const listener = await amqpConn.createChannel();
  await listener.consume('console-orders', () => {}, { noAck: false });
  await mgmt('PUT', '/api/policies/%2F/console-policy', { pattern: '^console-', definition: { 'max-length': 100000 }, 'apply-to': 'queues' });
  for (const [fragment, heading, expect] of [
    ['#/exchanges', 'Exchanges', 'console-dlx'],
    ['#/connections', 'Connections', '127.0.0.1'],
    ['#/channels', 'Channels', '127.0.0.1'],
    ['#/consumers', 'Consumers', 'console-orders'],
    ['#/vhosts', 'Virtual hosts', '/'],
    ['#/users', 'Users', 'viewer'],
    ['#/policies', 'Policies', 'console-policy'],
  ]) {
    await go(fragment);
    await page.getByRole('heading', { name: heading, exact: true }).waitFor();
    await page.locator('table.list tbody td', { hasText: expect }).first().waitFor();
    await shot(fragment.slice(2));
  }
  await listener.close();
});

test('every page passes an accessibility audit (axe-core, WCAG 2 A and AA)', async () => {
  // axe is injected as a script, which the console's own policy rightly forbids: this one
  // context bypasses CSP for the audit (the main context keeps checking the policy).
  const auditContext = await browser.newContext({ viewport: { width: 1280, height: 720 }, bypassCSP: true });
  const audit = await auditContext.newPage();
  audit.setDefaultTimeout(WAIT_MS);
  await audit.goto(`${base}/`);
  await audit.getByLabel('Username').fill(ADMIN.name);
  await audit.getByLabel('Password').fill(ADMIN.password);
  await audit.getByRole('button', { name: 'Log in' }).click();
  await audit.getByRole('button', { name: 'Log out' }).waitFor();
  const axe = resolve(dirname(fileURLToPath(import.meta.url)), 'node_modules/axe-core/axe.min.js');
  const pages = [
    ['#/', 'Message rates'],
    ['#/queues', 'console-orders'],
    ['#/queue/%2F/console-orders', 'Publish a test message'],
    ['#/exchanges', 'console-dlx'],
    ['#/connections', '127.0.0.1'],
    ['#/consumers', 'No consumers.'],
    ['#/dead-letters', 'console-dlq'],
    ['#/dead-letters/%2F/console-dlq', 'This queue is empty.'],
    ['#/tracking/%2F/order-7', 'Outcome: succeeded'],
    ['#/contracts/%2F/console-order', 'Version 1 (checked now)'],
    ['#/transforms/%2F/console-shape', 'Most outputs'],
    ['#/users', 'viewer'],
    ['#/policies', 'console-policy'],
    ['#/definitions', 'Download definitions'],
  ];
  const found = [];
  for (const [fragment, text] of pages) {
    await audit.evaluate((f) => {
      location.hash = f;
    }, fragment);
    await audit.getByText(text, { exact: false }).first().waitFor();
    await audit.addScriptTag({ path: axe });
    const { violations, passed } = await audit.evaluate(async () => {
      const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] });
      const violations = result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, first: v.nodes[0]?.target.join(' ') }));
      return { violations, passed: result.passes.length };
    });
    assert.ok(passed >= 10, `the audit of ${fragment} ran its rules (${passed} passed)`);
    for (const v of violations) found.push({ page: fragment, ...v });
  }
  await auditContext.close();
  assert.deepEqual(found, [], 'no WCAG 2 A or AA violation on any page');
});

test('10,000 queues: the list pages, sorts and filters them, drawing one page at a time', async (t) => {
  const queues = Array.from({ length: BULK_QUEUES }, (_, i) => ({ name: `bulk-${String(i).padStart(5, '0')}`, vhost: '/', durable: false, auto_delete: false, arguments: {} }));
  await mgmt('POST', '/api/definitions', { queues });
  // How long each step takes to show is reported, not asserted: the assertion is that only one
  // page of rows is ever drawn.
  const timed = async (what, step) => {
    const started = Date.now();
    await step();
    t.diagnostic(`${what}: ${Date.now() - started} ms`);
  };
  const status = page.locator('.list-status');
  await timed('open the list of 10,000 queues', async () => {
    await go('#/dashboard-away');
    await go('#/queues');
    await until('the whole list counted', async () => /of 10,0\d\d queues/.test((await status.textContent()) || ''));
  });
  assert.equal(await page.locator('table.list tbody tr').count(), 100, 'one page of 100 rows is drawn, not 10,000');
  await timed('the next page', async () => {
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('Page 2 of', { exact: false }).waitFor();
  });
  // Sorted by name already: sorting again by name turns the order round, from the first page.
  await timed('sort by name, descending', async () => {
    await page.getByRole('button', { name: 'Name', exact: false }).click();
    await until('the list sorted by name, descending', async () => (await page.locator('table.list tbody tr td a').first().textContent()) === 'console-work');
  });
  await page.getByText('Page 1 of', { exact: false }).waitFor();
  await timed('sort by messages ready', async () => {
    await page.getByRole('button', { name: 'Ready', exact: false }).click();
    await until('the fullest queue first', async () => (await page.locator('table.list tbody tr td a').first().textContent()) === 'console-traffic');
  });
  await timed('filter by text (after the 300 ms typing pause)', async () => {
    await page.getByPlaceholder('Filter queues by name').fill('bulk-0999');
    await until('the filter applied', async () => /of 10 queues \(10,0\d\d in all\)/.test((await status.textContent()) || ''));
  });
  await page.getByLabel('regular expression').check();
  await page.getByPlaceholder('Filter queues by name').fill('^bulk-0000[0-4]$');
  await until('the regular expression applied', async () => /of 5 queues/.test((await status.textContent()) || ''));
  await shot('queues-10000');
});

test('a user without the right tag is refused, and told why', async () => {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByText('You have logged out.').waitFor();
  await logIn(VIEWER);
  await go('#/users');
  await page.locator('summary', { hasText: 'Add a user' }).click();
  await page.getByLabel('Name', { exact: true }).fill('intruder');
  await page.getByLabel('Password').fill('pw');
  await page.getByRole('button', { name: 'Add a user' }).click();
  // The list of users itself is for administrators only: it says so instead of rows.
  await page.locator('.list-status', { hasText: 'Not allowed: only a user with the administrator tag may do this.' }).waitFor();
  await page.locator('#notice', { hasText: 'Not allowed: only a user with the administrator tag may do this.' }).waitFor();
  await shot('refused');
  await assert.rejects(mgmt('GET', '/api/users/intruder'), /404/);
});

test('on a phone-sized screen the menu folds away and opens from its button', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await go('#/');
  const nav = page.getByRole('navigation', { name: 'Pages' });
  assert.equal(await nav.isVisible(), false);
  await page.getByRole('button', { name: 'Menu' }).click();
  await nav.getByRole('link', { name: 'Queues' }).waitFor();
  await shot('phone-menu');
  await nav.getByRole('link', { name: 'Queues' }).click();
  await page.getByRole('heading', { name: 'Queues' }).waitFor();
  await page.getByText(/of 10,0\d\d queues/).waitFor();
  assert.equal(await nav.isVisible(), false, 'choosing a page folds the menu again');
  assert.equal(await page.getByRole('columnheader', { name: 'Policy' }).isVisible(), false, 'minor columns give way');
  await shot('phone-queues');
  await page.setViewportSize({ width: 1280, height: 720 });
});
