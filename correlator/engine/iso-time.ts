// Date#toISOString for the engine's hot path: every record carries its
// event time and its decision time as ISO text, and consecutive ones mostly
// fall in the same second. The text up to the second is kept from the last
// call, so most calls only format the milliseconds.
//
// What must stay true: isoTime(ms) === new Date(ms).toISOString() for every
// ms (tested on seeded values), including throwing RangeError for an
// invalid time. Anything the cache cannot do exactly (fractional ms, years
// outside 0000–9999) goes to Date itself.

let cachedSecond = NaN;
/** `2024-01-01T00:00:00.` of cachedSecond. */
let cachedPrefix = '';

export function isoTime(ms: number): string {
  if (!Number.isInteger(ms)) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const iso = new Date(second * 1000).toISOString();
    if (iso.length !== 24) return new Date(ms).toISOString();
    cachedPrefix = iso.slice(0, 20);
    cachedSecond = second;
  }
  const milli = ms - second * 1000;
  return `${cachedPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
