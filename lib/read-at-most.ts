// Reading an answer whose size the other side decides (a HEC target, a
// stored document) without taking it all into memory when it is larger
// than it could sensibly be.

/** The body as text, or null (the rest discarded) once it passes `limit` bytes. */
export async function readAtMost(body: AsyncIterable<Uint8Array> & { destroy(): unknown }, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return null;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}
