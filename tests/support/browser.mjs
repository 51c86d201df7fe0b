// Headless Chromium (the system one; never downloaded) through playwright-core.
import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launch Chromium. Playwright gives it a fresh temporary profile (user-data dir) and
 * removes it on close; each `newContext()` is a further isolated, incognito-like
 * context (own cache, storage, routes), so tests do not see each other's state.
 */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    browser,
    newContext: (options = {}) => browser.newContext({ viewport: { width: 1280, height: 900 }, ...options }),
    close: () => browser.close(),
  };
}
