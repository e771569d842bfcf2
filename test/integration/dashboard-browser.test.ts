// The dashboard in a real headless Chromium (Debian's package, driven by playwright-core) against
// a real controller and OVS bed: it loads, shows the switch and live connections, migrates a
// connection from its button, and updates live over the WebSocket (checked on screenshots too).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireBrowser } from '../lib/browser.ts';
import { HandoffBed } from '../lib/handoff-net.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import { EventCollector, TOKEN, openConnection, startApi } from './api-helpers.ts';


describe('dashboard in headless Chromium', function () {
  this.timeout(60000);
  let bed: HandoffBed;
  let api: ApiServer;
  let base: string;
  let browser: Browser;
  let page: Page;
  let stopVerdicts: () => void;
  const problems: string[] = [];

  before(async function () {
    this.timeout(120000);
    await requireBrowser(this);
    bed = await HandoffBed.create({ prefix: '/usr' });
    ({ api, base } = await startApi(bed.controller));
    stopVerdicts = bed.autoVerdict('FORWARD');
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // Refused API calls (the wrong-token case) are shown by the page itself; Chromium also logs them.
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource: .*status of 401/.test(m.text())) problems.push(`console error: ${m.text()}`); });
    // The page is self-contained: nothing may be fetched from anywhere but the controller.
    page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith(base.replace('http', 'ws'))) problems.push(`external request: ${r.url()}`); });
  });
  after(async () => {
    stopVerdicts?.();
    await browser?.close();
    await api?.stop();
    await bed?.destroy();
  });

  it('loads and shows the switch with its mode, live over the WebSocket', async () => {
    await page.goto(base + '/');
    assert.equal(await page.title(), 'tcp-migrate');
    await page.locator('#ws-status.live').waitFor();
    const dpid = bed.controller.switches[0].describe();
    const row = page.locator(`#switches tr[data-dpid="${dpid}"]`);
    await row.waitFor();
    assert.equal(await row.locator('.mode').textContent(), 'relay');
    assert.equal(await page.locator('#services tbody tr').first().locator('td').first().textContent(), 'echo');
    assert.deepEqual(problems, []);
  });

  it('shows a live connection with flow byte counts, and migrates it from its button', async () => {
    const c = bed.scriptClient();
    const events = await EventCollector.open(base);
    try {
      const id = await openConnection(bed, c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'hello' }), { ok: true, reply: 'server1 hello' });
      const row = page.locator(`#connections tr[data-conn-id="${id}"]`);
      await row.locator('td.phase', { hasText: 'forwarded' }).waitFor();
      assert.equal(await row.locator('td.backend').textContent(), 'server1');
      // Bytes come from /api/flows, polled every 2 s.
      await row.locator('td.bytes', { hasText: /^\d+(\.\d)? (B|KiB|MiB)$/ }).waitFor();
      assert.match(await row.locator('td.packets').textContent() ?? '', /^[1-9]\d*$/);

      // No token stored yet: the page asks for one and keeps it.
      page.once('dialog', (d) => { assert.equal(d.type(), 'prompt'); d.accept(TOKEN).catch(() => undefined); });
      await row.locator('select.target').selectOption('server2');
      await row.locator('button.migrate-btn').click();
      await page.locator('#message.ok', { hasText: `connection ${id} moves at the client's next data segment` }).waitFor();
      assert.equal(await page.evaluate('localStorage.getItem("tcp-migrate-token")'), TOKEN);

      assert.deepEqual(await c.cmd({ op: 'send', line: 'moved' }), { ok: true, reply: 'server2 moved' });
      await events.next((e) => e.type === 'migrated' && e.connection.id === id);
      await row.locator('td.backend', { hasText: 'server2' }).waitFor();
      await page.locator(`#migrations tr[data-conn-id="${id}"] td.latency`).waitFor();
      assert.match(await page.locator(`#migrations tr[data-conn-id="${id}"]`).textContent() ?? '', /server1 → server2\d+ msmid-stream/);
      await c.cmd({ op: 'close' });
    } finally { events.close(); c.end(); }
    assert.deepEqual(problems, []);
  });

  it('updates live: a new connection and its migration appear without a reload (and on screen)', async () => {
    // A wrong token in the field is reported, not crashing the page.
    await page.fill('#token', 'wrong-token');
    await page.dispatchEvent('#token', 'change');
    const c = bed.scriptClient();
    const table = page.locator('#connections');
    try {
      await page.locator('#connections tr.empty').waitFor();
      // Gone if the page reloads: everything below must arrive over the open WebSocket.
      await page.evaluate('window.tmtSamePage = true');
      const eventsBefore = Number(await page.locator('#event-count').textContent());
      const before = await table.screenshot();
      const pageBefore = await page.screenshot({ fullPage: true });
      const id = await openConnection(bed, c);
      assert.deepEqual(await c.cmd({ op: 'send', line: 'live' }), { ok: true, reply: 'server1 live' });
      const row = page.locator(`#connections tr[data-conn-id="${id}"]`);
      await row.locator('td.phase', { hasText: 'forwarded' }).waitFor();
      await page.locator('#events li.ev-forwarded', { hasText: `conn ${id} forwarded to server1` }).waitFor();
      assert.ok(Number(await page.locator('#event-count').textContent()) > eventsBefore);

      await row.locator('select.target').selectOption('server3');
      await row.locator('button.migrate-btn').click();
      await page.locator('#message.error', { hasText: 'invalid API token' }).waitFor();
      await page.fill('#token', TOKEN);
      await page.dispatchEvent('#token', 'change');
      await row.locator('button.migrate-btn').click();
      await page.locator('#message.ok', { hasText: `connection ${id}` }).waitFor();
      assert.deepEqual(await c.cmd({ op: 'send', line: 'again' }), { ok: true, reply: 'server3 again' });
      await page.locator('#events li.ev-migrated', { hasText: `conn ${id} migrated server1 → server3` }).waitFor();
      await row.locator('td.backend', { hasText: 'server3' }).waitFor();
      const during = await table.screenshot();
      const pageAfter = await page.screenshot({ fullPage: true });
      await c.cmd({ op: 'close' });
      await row.waitFor({ state: 'detached', timeout: 15000 });
      await page.locator('#connections tr.empty').waitFor();
      const after = await table.screenshot();
      assert.equal(await page.evaluate('window.tmtSamePage'), true, 'the page was not reloaded');

      const dir = tmpdir();
      writeFileSync(join(dir, 'tcp-migrate-dashboard-before.png'), pageBefore);
      writeFileSync(join(dir, 'tcp-migrate-dashboard-after.png'), pageAfter);
      for (const png of [before, during, after]) assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
      // The same table state renders the same pixels, so a difference is the live row itself.
      assert.ok(before.equals(after), 'the empty connections table looks the same before and after');
      assert.ok(!during.equals(before), 'the connections table shows the live connection on screen');
    } finally { c.end(); }
    assert.deepEqual(problems, []);
  });
});
