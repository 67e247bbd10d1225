// Opens the status page in headless Chromium (Debian's, through
// playwright-core) at a laptop and a phone size, and prints what a test
// needs as JSON: console errors, failed requests, the page's text, whether
// it overflows sideways, and where the screenshots are.
// Usage: node check.mjs URL SCREENSHOT_DIR
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const [url, dir] = process.argv.slice(2);
const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
const executablePath = candidates.find((p) => p && existsSync(p));
if (!executablePath) {
  console.error('no Chromium found: apt-get install chromium (or set CHROMIUM=/path/to/chrome)');
  process.exit(2);
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
const result = { errors: [], failedRequests: [], views: {} };
try {
  for (const [name, viewport] of [['laptop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
    const page = await browser.newPage({ viewport, deviceScaleFactor: name === 'phone' ? 2 : 1 });
    // CSP violations and failed loads are reported as console errors too.
    page.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') result.errors.push(`${name}: ${msg.text()}`); });
    page.on('pageerror', (err) => result.errors.push(`${name}: ${err.message}`));
    page.on('requestfailed', (req) => result.failedRequests.push(`${name}: ${req.url()} ${req.failure()?.errorText}`));
    const response = await page.goto(url, { waitUntil: 'load', timeout: 15000 });
    const screenshot = join(dir, `status-page-${name}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    result.views[name] = {
      status: response.status(),
      csp: response.headers()['content-security-policy'] ?? null,
      text: await page.innerText('body'),
      sources: await page.$$eval('[data-source]', (els) => els.map((e) => ({
        id: e.getAttribute('data-source'),
        entities: e.querySelector('.entities')?.textContent ?? null,
      }))),
      // Styles applied: the stylesheet loaded under the CSP.
      styled: await page.$eval('body', (b) => getComputedStyle(b).margin === '0px'),
      overflowsSideways: await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1),
      screenshot,
    };
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
