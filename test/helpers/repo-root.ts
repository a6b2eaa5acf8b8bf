// The repository's root folder, wherever a test file sits (tests run from
// dist/test/..., at any depth).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
