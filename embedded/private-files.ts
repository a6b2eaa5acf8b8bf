// The embedded servers' secrets (PouchDB Server's config.json: cookie
// secret, admin hash; ClickHouse's users.xml: its password's hash) and
// their folders are their user's only, made so on every start: the modes
// of mkdir and writeFile apply only when they create, a server may rewrite
// a file (PouchDB Server does, at every start and /_config change), and an
// older couchlog left 0644 files in 0755 folders.
import { chmodSync, mkdirSync } from 'node:fs';

export function keepPrivate(dirs: readonly string[], files: readonly string[]): void {
  for (const dir of dirs) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  for (const file of files) {
    try {
      chmodSync(file, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
