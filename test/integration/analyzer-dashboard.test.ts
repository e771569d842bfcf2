// The dashboard's Analyzers panel in a real headless Chromium: a controller bound to a Suricata
// EVE stream socket shows it waiting, up once a writer sends a record, silent once the writer
// disconnects (socket peer gone), as GET /api/analyzers says.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireBrowser } from '../lib/browser.ts';
import { HandoffBed } from '../lib/handoff-net.ts';
import type { ApiServer } from '../../controller/api/index.ts';
import { startApi } from './api-helpers.ts';


describe('dashboard: analyzer health panel (headless Chromium)', function () {
  this.timeout(60000);
  let bed: HandoffBed | undefined;
  let api: ApiServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base = '';
  let dir = '';
  const problems: string[] = [];

  before(async function () {
    this.timeout(120000);
    await requireBrowser(this);
    dir = mkdtempSync('/tmp/tmt-anadash-');
    bed = await HandoffBed.create({ prefix: '/usr', analyzers: { suricata: { streamSocket: join(dir, 'eve.sock') } } });
    ({ api, base } = await startApi(bed.controller));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  });
  after(async () => {
    await browser?.close();
    await api?.stop();
    await bed?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('waiting → up (a record) → silent (the writer disconnected), with the reason', async () => {
    await page.goto(base + '/');
    const row = page.locator('#analyzers tr[data-analyzer="suricata"]');
    await row.and(page.locator('[data-state="waiting"]')).waitFor();
    assert.match(await page.locator('#verdict-timeouts').textContent() ?? '', /verdict timeouts: none/);

    const up = once(bed!.controller.analyzers, 'analyzer_health');
    const w = createConnection(join(dir, 'eve.sock'));
    await once(w, 'connect');
    w.write('{"event_type":"stats","stats":{"uptime":1}}\n');
    assert.deepEqual((await up).slice(0, 2), ['suricata', 'up']);
    await row.and(page.locator('[data-state="up"]')).waitFor(); // the panel polls every 2 s
    assert.equal(await row.locator('.badge').textContent(), 'up');
    assert.equal(await row.locator('td.peers').textContent(), '1', 'the socket peer (writer) is shown');

    const silent = once(bed!.controller.analyzers, 'analyzer_health');
    w.end();
    assert.deepEqual((await silent).slice(0, 2), ['suricata', 'silent']);
    await row.and(page.locator('[data-state="silent"]')).waitFor();
    assert.match(await row.textContent() ?? '', /silent.*its socket peer disconnected/);
    assert.equal(await row.locator('td.peers').textContent(), '0');
    assert.deepEqual(problems, []);
  });
});
