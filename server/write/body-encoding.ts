// A request body as its Content-Encoding says: as it came, or gzip-inflated
// within the body limit (a small bomb must not inflate past it). Shippers
// compress (Vector, Fluent Bit, Splunk's clients); CouchDB inflates gzip
// bodies too. The routes turn the failure kinds into their own answers.
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';

const gunzipAsync = promisify(gunzip);

export class BodyEncodingError extends Error {
  constructor(
    readonly kind: 'unsupported' | 'too_large' | 'corrupt',
    message: string,
  ) {
    super(message);
  }
}

export async function decodedBody(raw: Buffer, contentEncoding: string | undefined, limitBytes: number): Promise<Buffer> {
  const encoding = String(contentEncoding ?? '')
    .trim()
    .toLowerCase();
  if (encoding === '' || encoding === 'identity' || raw.length === 0) return raw;
  if (encoding !== 'gzip' && encoding !== 'x-gzip') throw new BodyEncodingError('unsupported', `Content-Encoding ${encoding} is not supported (gzip is)`);
  try {
    return await gunzipAsync(raw, { maxOutputLength: limitBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new BodyEncodingError('too_large', `the decompressed body is larger than ${limitBytes} bytes`);
    }
    throw new BodyEncodingError('corrupt', `the gzip body cannot be decompressed: ${(err as Error).message}`);
  }
}
