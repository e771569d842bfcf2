// Headless Chromium for the dashboard tests: Debian's package driven by playwright-core (its own
// browser download cannot work here). CI must have both; a developer machine without them skips.
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

/** TM_CHROMIUM: another browser binary (also how the missing-browser path is checked). */
export const CHROMIUM = process.env.TM_CHROMIUM ?? '/usr/bin/chromium';
/** Without the background-networking flags Chromium keeps dialling out of this closed network. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Why the browser tests cannot run here, or undefined when they can. */
export async function browserMissing(): Promise<string | undefined> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} not found (apt-get install chromium)`;
  try { await import('playwright-core'); } catch { return 'playwright-core is not installed (npm install)'; }
  return undefined;
}

/** In a `before` hook: fails under CI when the browser is missing, skips the suite elsewhere. */
export async function requireBrowser(ctx: Mocha.Context): Promise<void> {
  const missing = await browserMissing();
  if (!missing) return;
  if (process.env.CI) throw new Error(`dashboard browser test cannot run: ${missing}`);
  ctx.skip();
}

export async function launchChromium(): Promise<Browser> {
  const playwright = await import('playwright-core');
  return playwright.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}
