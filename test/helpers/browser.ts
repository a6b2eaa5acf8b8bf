// Headless Chromium for the browser tests: Debian's `chromium` driven by
// playwright-core (no browser download). Screenshots go to a temporary
// folder whose path is printed (kept with KEEP_SCREENSHOTS=1).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(
  (p): p is string => !!p,
);

export function chromiumPath(): string | null {
  return CHROMIUM_CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export interface HeadlessBrowser {
  browser: Browser;
  /** Where screenshots go. */
  shots: string;
  shot: (name: string) => string;
  close: () => Promise<void>;
}

export async function launchBrowser(label: string): Promise<HeadlessBrowser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(`no Chromium found (tried ${CHROMIUM_CANDIDATES.join(', ')}; apt-get install chromium)`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const shots = mkdtempSync(join(tmpdir(), `couchlog-${label}-`));
  process.stdout.write(`# screenshots: ${shots}\n`);
  return {
    browser,
    shots,
    shot: (name) => join(shots, `${name}.png`),
    close: async () => {
      await browser.close();
      if (!process.env.KEEP_SCREENSHOTS) rmSync(shots, { recursive: true, force: true });
    },
  };
}
