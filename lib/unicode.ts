// Lone surrogates: UTF-16 halves without their pair, which JavaScript
// strings may hold but no Unicode text can. JSON.stringify writes them as
// `\ud800` escapes; CouchDB stores them, ClickHouse refuses the whole
// INSERT (code 25). Node 20's String methods do the work natively.

interface WellFormedString {
  isWellFormed(): boolean;
  toWellFormed(): string;
}

/** No lone surrogates. */
export function isWellFormed(text: string): boolean {
  return (text as unknown as WellFormedString).isWellFormed();
}

/** The text with each lone surrogate replaced by U+FFFD, as a UTF-8 encoder does; the same string when there is none. */
export function toWellFormed(text: string): string {
  const s = text as unknown as WellFormedString;
  return s.isWellFormed() ? text : s.toWellFormed();
}
